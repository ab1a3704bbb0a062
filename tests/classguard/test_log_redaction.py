"""`classguard serve` never prints a secret query value: a real served process, real HTTP and a
real WebSocket handshake carrying ``?token=…`` / ``?ticket=…``, then its captured log."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from classguard.log_redaction import redact
from tests.classroom.live_server import LiveServer

SECRETS = ["tok-7f3a9c-SECRET", "tkt-51b2-SECRET", "code-88231-SECRET", "pw-hunter2-SECRET",
           "sig-aa01-SECRET", "key-e0e0-SECRET", "at-9911-SECRET"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "var").start()
    yield srv
    srv.stop()


def test_redact_keeps_other_parameters() -> None:
    line = '127.0.0.1:5 - "GET /x?class=42&token=abc&X-Amz-Signature=ff&api_key=k&page=2 HTTP/1.1" 200'
    assert redact(line) == ('127.0.0.1:5 - "GET /x?class=42&token=[redacted]&X-Amz-Signature=[redacted]'
                            '&api_key=[redacted]&page=2 HTTP/1.1" 200')


@pytest.mark.slow
async def test_served_process_never_logs_secret_query_values(server: LiveServer) -> None:
    token, ticket, code, password, signature, key, access = SECRETS
    base = server.base
    student = server.register("logs@example.com")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.get("/api/v1/me", params={"token": student.token}, headers=student.headers)
        assert r.status_code == 200
        assert (await http.get(f"/healthz?token={token}&probe=1")).status_code == 200
        await http.get(f"/api/v1/me?code={code}&password={password}")
        await http.get(f"/api/v1/nothing?signature={signature}&KEY={key}&access_token={access}")
    # the signaling socket: refused before the upgrade (uvicorn logs the handshake line)
    ws = f"ws://127.0.0.1:{server.port}/api/v1/sessions/{uuid.uuid4()}/signal"
    for query in (f"token={token}", f"ticket={ticket}"):
        with pytest.raises(InvalidStatus):
            async with connect(f"{ws}?{query}"):
                pass
    server.stop()

    text = server.log_text()
    for secret in [*SECRETS, student.token]:
        assert secret not in text, f"{secret} leaked into the log"
    # the requests were logged, with the secret's place marked
    assert "/healthz?token=[redacted]&probe=1" in text
    assert "/api/v1/me?token=[redacted]" in text
    assert "signal?ticket=[redacted]" in text
