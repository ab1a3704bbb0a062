"""Bounded input on a real ``classguard serve`` (uvicorn): oversized bodies are refused before they
are read while other requests are served, and every error leaves the connection usable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tests.classguard.raw_http import RawConnection, RawResponse
from tests.classroom.live_server import LiveServer

MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path_factory.mktemp("bounded") / "var").start()
    yield srv
    srv.stop()


def _assert_too_large(r: RawResponse) -> None:
    assert r.status == 413, r
    assert r.json()["error"] == "PayloadTooLarge" and "bytes" in r.json()["detail"]
    assert r.headers.get("connection") == "close"  # the unread rest cannot carry another request


@pytest.mark.slow
def test_20_mb_bodies_are_refused_before_they_are_sent_while_others_are_served(server: LiveServer) -> None:
    # Four clients announce 20 MB bodies and send only their first 64 KB: the server answers each
    # from the headers alone, so it neither waits for, holds nor parses the rest.
    big = [RawConnection(server.port) for _ in range(4)]
    for i, conn in enumerate(big):
        conn.request("POST", "/api/v1/auth/register" if i % 2 else "/api/v1/classes",
                     {"Content-Type": "application/json", "Content-Length": str(20 * MB)}, b"[" + b" " * 65535)
    # while those bodies are still "in flight", a small request gets its normal answer
    student = server.register("bystander@example.com")
    assert httpx.get(f"{server.base}/api/v1/me", headers=student.headers, timeout=30).status_code == 200
    for conn in big:
        _assert_too_large(conn.response())
        assert conn.closed_by_server()
        conn.close()


@pytest.mark.slow
def test_chunked_body_is_cut_off_when_it_passes_the_limit(server: LiveServer) -> None:
    conn = RawConnection(server.port)
    conn.request("POST", "/api/v1/auth/login", {"Content-Type": "application/json",
                                                "Transfer-Encoding": "chunked"})
    chunk = 64 * 1024
    for _ in range(MB // chunk + 1):  # one chunk past the 1 MB default, and no end marker
        conn.send(f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n")
    _assert_too_large(conn.response())
    conn.close()


@pytest.mark.slow
def test_connection_stays_usable_after_errors_including_an_unexpected_500(server: LiveServer) -> None:
    student = server.register("keepalive@example.com")
    auth = {"Authorization": f"Bearer {student.token}"}
    login = b'{"identifier": "nobody@example.com", "password": "wrong password"}'
    json_type = {"Content-Type": "application/json"}
    conn = RawConnection(server.port)
    try:
        assert conn.exchange("GET", f"/api/v1/classes?offset={2**63}", auth).status == 422
        assert conn.exchange("GET", "/api/v1/no-such-route").status == 404
        assert conn.exchange("POST", "/api/v1/auth/login", json_type, b"{not json").status == 422
        # An unexpected failure: the database lost a table the login path needs.
        db = sqlite3.connect(server.data_dir / "classguard.db")
        db.execute("ALTER TABLE throttle_counters RENAME TO throttle_counters_gone")
        db.commit()
        try:
            failed = conn.exchange("POST", "/api/v1/auth/login", json_type, login)
        finally:
            db.execute("ALTER TABLE throttle_counters_gone RENAME TO throttle_counters")
            db.commit()
            db.close()
        assert failed.status == 500
        assert failed.json() == {"error": "InternalError", "detail": "internal server error"}
        assert failed.headers.get("connection") != "close"
        # ... and the same connection answers the next request
        after = conn.exchange("GET", "/api/v1/me", auth)
        assert after.status == 200 and after.json()["email"] == "keepalive@example.com"
        assert conn.exchange("POST", "/api/v1/auth/login", json_type, login).status == 401
    finally:
        conn.close()
    assert "unhandled error" in server.log_text()  # logged once, through the one handler
