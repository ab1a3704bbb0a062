"""The signaling WebSocket on a real server: refused before the upgrade with the error shape
(401 no token, 403 not a member / cross-site cookie, 409 ended), welcome for a member."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.classroom.live_server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path_factory.mktemp("sig") / "var").start()
    yield srv
    srv.stop()


async def _refused(url: str, status: int, error: str, **kwargs: object) -> str:
    with pytest.raises(InvalidStatus) as err:
        async with connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    response = err.value.response
    assert response.status_code == status
    body = json.loads(response.body or b"{}")
    assert body["error"] == error and body["detail"]
    return str(body["detail"])


async def test_socket_refusals_and_welcome(server: LiveServer, tmp_path: Path) -> None:
    teacher = server.register("t@example.com", "teacher")
    student = server.register("s@example.com", "student")
    outsider = server.register("o@example.com", "student")
    class_id = server.make_class(teacher, [student])
    sid = server.post(f"/api/v1/classes/{class_id}/join", teacher)["session"]["id"]
    base = f"ws://127.0.0.1:{server.port}/api/v1/sessions/{sid}/signal"

    await _refused(base, 401, "Unauthorized")
    await _refused(f"{base}?token=not-a-token", 401, "Unauthorized")
    await _refused(server.ws_url(sid, outsider), 403, "Forbidden")
    # the session cookie only works from our own origin (no cross-site socket hijacking)
    detail = await _refused(base, 403, "Forbidden", additional_headers={"Cookie": f"cg_session={student.token}"},
                            origin="http://evil.example")
    assert "cross-origin" in detail

    async with connect(base, additional_headers={"Cookie": f"cg_session={student.token}"},
                       origin=f"http://127.0.0.1:{server.port}") as ws:  # type: ignore[arg-type]
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome" and welcome["participant_id"] == student.id
        assert welcome["accepted_codecs"] == {"audio": "opus", "video": "VP8"}
        await ws.send("this is not json")
        while (msg := json.loads(await ws.recv()))["type"] != "error":
            pass
        assert msg["error"] == "BadRequest"  # a bad message gets an error, the socket stays usable
        await ws.send(json.dumps({"type": "offer", "sdp": "v=0\r\nm=audio x\r\n"}))
        while (msg := json.loads(await ws.recv()))["type"] != "error":
            pass
        assert "SDP" in msg["detail"]

    server.post(f"/api/v1/sessions/{sid}/end", teacher)
    await _refused(server.ws_url(sid, student), 409, "Conflict")
    await _refused(server.ws_url(sid, outsider), 403, "Forbidden")  # no hint for outsiders
