"""The signaling WebSocket on a real server: refused before the upgrade with the error shape
(400 a login token in the URL, 401 no or a used ticket, 403 not a member / cross-site cookie,
404 a bad id, 409 ended), welcome for a member; bad frames get error messages, not a closed socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
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
    await _refused(f"{base}?ticket=not-a-ticket", 401, "Unauthorized")
    same_origin = f"http://127.0.0.1:{server.port}"
    outsider_cookie = {"Cookie": f"cg_session={outsider.token}"}
    await _refused(base, 403, "Forbidden", additional_headers=outsider_cookie, origin=same_origin)
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

    kept = server.ws_url(sid, student)  # a ticket taken before the end
    server.post(f"/api/v1/sessions/{sid}/end", teacher)
    await _refused(kept, 409, "Conflict")
    await _refused(base, 409, "Conflict", additional_headers={"Cookie": f"cg_session={student.token}"},
                   origin=same_origin)
    # no hint for outsiders
    await _refused(base, 403, "Forbidden", additional_headers=outsider_cookie, origin=same_origin)


async def test_login_token_in_the_url_is_refused_and_tickets_are_single_use(server: LiveServer) -> None:
    teacher = server.register("t2@example.com", "teacher")
    student = server.register("s2@example.com", "student")
    class_id = server.make_class(teacher, [student], title="Tickets")
    join = server.post(f"/api/v1/classes/{class_id}/join", student)
    sid = join["session"]["id"]
    base = f"ws://127.0.0.1:{server.port}/api/v1/sessions/{sid}/signal"
    # the join answer carries a ticket, never the login token
    assert "ticket=" in join["signal_url"] and student.token not in join["signal_url"] and join["ticket_expires_at"]

    detail = await _refused(f"{base}?token={student.token}", 400, "BadRequest")  # a 7-day token in a URL
    assert "ticket" in detail
    await _refused(f"ws://127.0.0.1:{server.port}/api/v1/sessions/not-a-uuid/signal", 404, "NotFound")

    url = server.ws_url(sid, student)
    other = server.post(f"/api/v1/classes/{server.make_class(teacher, [student], title='Other')}/join", student)
    other_sid = other["session"]["id"]
    # a ticket opens only the session it was issued for (and is not spent by trying elsewhere)
    await _refused(url.replace(sid, other_sid), 401, "Unauthorized")
    async with connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
    await _refused(url, 401, "Unauthorized")  # used once: gone

    # a ticket of a token that was logged out since is refused
    fresh = server.ws_url(sid, student)
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        r = await http.post("/api/v1/auth/logout", headers=student.headers)
    assert r.status_code == 204
    await _refused(fresh, 401, "Unauthorized")


async def _next_error(ws: object) -> dict[str, object]:
    while True:
        msg = json.loads(await ws.recv())  # type: ignore[attr-defined]
        if msg["type"] == "error":
            return dict(msg)


async def test_bad_frames_get_error_messages_and_the_socket_stays_open(server: LiveServer) -> None:
    teacher = server.register("t3@example.com", "teacher")
    student = server.register("s3@example.com", "student")
    class_id = server.make_class(teacher, [student], title="Frames")
    sid = server.post(f"/api/v1/classes/{class_id}/join", teacher)["session"]["id"]
    async with connect(server.ws_url(sid, student)) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(b"\x00\x01binary")
        err = await _next_error(ws)
        assert err["error"] == "BadRequest" and "binary" in str(err["detail"])
        await ws.send(json.dumps({"type": "source", "source": "mic", "enabled": True, "mid": "7"}))
        err = await _next_error(ws)
        assert err["error"] == "BadRequest" and "unknown mid" in str(err["detail"])
        # SDP the parser chokes on: the detail says what is wrong, not which exception was raised
        for sdp in ("v=0\r\nm=audio x\r\n", "v=0\r\no=- x\r\nm=audio 9 UDP/TLS/RTP/SAVPF abc\r\n"):
            await ws.send(json.dumps({"type": "offer", "sdp": sdp}))
            err = await _next_error(ws)
            detail = str(err["detail"])
            assert "SDP" in detail, detail
            assert not any(word in detail for word in ("Error", "Exception", "Traceback", "literal")), detail
        await ws.send(json.dumps({"type": "nonsense"}))  # still answered: the socket survived all of it
        assert "unknown message type" in str((await _next_error(ws))["detail"])
