"""Sanctions and sign-outs reach the live class, through the real signaling WebSocket with real
aiortc bots: a ban, a suspension, a logout or a cancellation closes the user's socket, stops
forwarding and recording (the open segment is stored as a normal slice and announced, except for a
cancelled account whose recordings are deleted), drops them from the teacher's participant list,
and refuses a reconnect; a suspension lifted on appeal lets them back in; mute/unmute still work.

The close times are printed (``-s`` shows them); no test asserts a duration."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from classguard.cli.common import free_port
from classguard.settings import Settings
from classroom import events
from classroom.bot import Bot, WebSocketChannel, join_channel, websocket_url
from classroom.live import relay_of
from tests.classroom.class_factories import make_class
from tests.factories import TestUser, logged_in, login
from tests.moderation.review.factory import claim, decide, decision, flag_slice, item_of_slice
from tests.moderation.slice_factory import Room

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.segment_seconds = 2.0  # slices close quickly
    return settings


@pytest.fixture(autouse=True)
def announced(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """Slices announced to the pipeline (recorded here instead of running ASR on them)."""
    ids: list[uuid.UUID] = []

    async def hook(session: AsyncSession, slice_id: uuid.UUID) -> None:
        ids.append(slice_id)

    monkeypatch.setattr(events, "slice_created_hooks", [hook])
    return ids


@pytest.fixture
async def base(app: FastAPI) -> AsyncIterator[str]:
    """The app (already started by the ``app`` fixture) served by uvicorn on a real port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.ensure_future(server.serve())
    await _when(lambda: bool(server.started))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


async def _bot(base: str, session_id: str, user: TestUser, name: str) -> Bot:
    return await Bot(await join_channel(base, session_id, user.token), name=name).start()


def _socket(bot: Bot) -> Any:
    channel = bot.channel
    assert isinstance(channel, WebSocketChannel)
    return channel._ws


async def _when(predicate: Callable[[], bool], timeout: float = 15.0) -> tuple[float, datetime]:
    """(monotonic, wall clock) of the first poll (every 10 ms) at which ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic(), datetime.now(UTC)


async def _closed(bot: Bot) -> float:
    await asyncio.wait_for(_socket(bot).wait_closed(), 15)
    return time.monotonic()


def _in_list(bot: Bot, user: TestUser) -> bool:
    return user.id in [p["participant_id"] for p in bot.participants]


def _is_error(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, r.text
    assert r.json()["error"] and r.json()["detail"]


@dataclass
class Class:
    sid: str
    teacher: TestUser
    student: TestUser
    moderator: TestUser
    room: Room


async def _live_class(client: httpx.AsyncClient) -> Class:
    setup = await make_class(client)
    r = await client.post(f"/api/v1/classes/{setup.id}/join", headers=setup.teacher.headers)
    assert r.status_code == 200, r.text
    sid = r.json()["session"]["id"]
    moderator = await logged_in(client, "moderator")
    room = Room(class_id=uuid.UUID(setup.id), session_id=uuid.UUID(sid), teacher_id=uuid.UUID(setup.teacher.id),
                speakers=[uuid.UUID(setup.teacher.id), uuid.UUID(setup.student.id)])
    room.next_seq[(uuid.UUID(setup.student.id), "mic")] = 500  # flagged test slices never meet the recorder's
    return Class(sid, setup.teacher, setup.student, moderator, room)


async def _slices(client: httpx.AsyncClient, c: Class) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/sessions/{c.sid}/slices", headers=c.moderator.headers)
    assert r.status_code == 200, r.text
    return [s for s in r.json() if s["user_id"] == c.student.id and s["source"] == "mic" and s["seq"] < 500]


async def _get(client: httpx.AsyncClient, path: str, user: TestUser) -> Any:
    r = await client.get(path, headers=user.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _flagged_item(client: httpx.AsyncClient, c: Class) -> dict[str, Any]:
    """A review item about the student (a flagged slice), claimed by the moderator."""
    flagged, _ = await flag_slice(c.room, user_id=uuid.UUID(c.student.id), media=b"flagged test media")
    item = await item_of_slice(client, c.moderator, flagged)
    await claim(client, c.moderator, item["id"])
    return item


async def _decide(client: httpx.AsyncClient, c: Class, action: str,
                  **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A moderator confirms a flag on the student with ``action``: (decision answer, review item)."""
    item = await _flagged_item(client, c)
    return await decide(client, c.moderator, item["id"], decision(action=action, **extra)), item


EXPECTED = {  # sanction -> (what the participant is told, what the recording trail says)
    "ban": ("account-restricted", "account banned"),
    "suspend": ("account-restricted", "account suspended"),
    "logout": ("signed-out", "signed out"),
    "cancel": ("account-restricted", "account cancelled"),
}


@pytest.mark.parametrize("sanction", list(EXPECTED))
async def test_sanction_or_sign_out_closes_the_live_connection(
    sanction: str, client: httpx.AsyncClient, base: str, announced: list[uuid.UUID], capsys: pytest.CaptureFixture[str]
) -> None:
    c = await _live_class(client)
    told, trail_reason = EXPECTED[sanction]
    teacher = await _bot(base, c.sid, c.teacher, "teacher")
    student = await _bot(base, c.sid, c.student, "student")
    # the student's second login holds a connection to another class: a logout ends only its own token
    other_token = ""
    other: Bot | None = None
    try:
        if sanction == "logout":
            other_setup = await make_class(client, students=0)
            r = await client.post(f"/api/v1/classes/{other_setup.id}/enroll", headers=c.student.headers)
            assert r.status_code == 201, r.text
            r = await client.post("/api/v1/auth/login", json={"identifier": c.student.email,
                                                               "password": c.student.password})
            other_token = r.json()["token"]
            r = await client.post(f"/api/v1/classes/{other_setup.id}/join", headers=other_setup.teacher.headers)
            other_sid = r.json()["session"]["id"]
            other = await Bot(await join_channel(base, other_sid, other_token), name="student elsewhere").start()

        student.publish_mic()
        await teacher.wait_for(lambda: teacher.heard(c.student.id, "mic") > 25, 20)
        stored_before = await _poll_slices(client, c, lambda s: len(s) >= 1)  # recording for real
        r = await client.post(f"/api/v1/sessions/{c.sid}/join", headers=c.student.headers)
        stale_ticket_url = websocket_url(base, r.json()["signal_url"])  # taken before the sanction

        item = await _flagged_item(client, c) if sanction in ("ban", "suspend") else {}
        closed = asyncio.ensure_future(_closed(student))
        dropped = asyncio.ensure_future(_when(lambda: not _in_list(teacher, c.student)))
        t0 = time.monotonic()
        if sanction in ("ban", "suspend"):
            extra: dict[str, Any] = {"duration_days": 7} if sanction == "suspend" else {}
            out = await decide(client, c.moderator, item["id"], decision(action=sanction, **extra))
            assert out["decision"]["applied"][0]["kind"] == sanction
        elif sanction == "logout":
            r = await client.post("/api/v1/auth/logout", headers=c.student.headers)
            assert r.status_code == 204, r.text
        else:
            r = await client.post("/api/v1/me/cancel", json={"password": c.student.password}, headers=c.student.headers)
            assert r.status_code == 204, r.text
        t_answer = time.monotonic()
        t_closed = await closed
        t_dropped, wall_dropped = await dropped
        with capsys.disabled():
            print(f"\n[live-control] {sanction}: socket closed {1000 * (t_closed - t0):.0f} ms after the request "
                  f"({1000 * (t_closed - t_answer):.0f} ms after its answer); teacher's list dropped the student "
                  f"{1000 * (t_dropped - t0):.0f} ms after the request")

        assert {"type": "removed", "reason": told} in student.messages
        relay = relay_of()
        assert relay is not None
        room = relay.rooms.get(uuid.UUID(c.sid))
        assert room is not None and uuid.UUID(c.student.id) not in room.participants
        await asyncio.sleep(0.3)  # what was in flight has arrived
        heard = teacher.heard(c.student.id, "mic")
        await asyncio.sleep(1.0)
        assert teacher.heard(c.student.id, "mic") == heard  # no longer forwarded

        if sanction == "cancel":
            # the closing segment is not kept for a cancelled account (its recordings are deleted)
            await _when(lambda: not any((relay.spool_dir / c.sid / c.student.id).rglob("*.webm*"))
                        if (relay.spool_dir / c.sid / c.student.id).is_dir() else True)
            after = await _slices(client, c)
            assert len(after) == len(stored_before) or all(s["close_reason"] != "left" for s in after)
        else:
            after = await _poll_slices(client, c, lambda s: any(x["close_reason"] == "left" for x in s))
            last = max(after, key=lambda s: s["seq"])
            assert last["close_reason"] == "left" and last["duration_s"] > 0
            assert uuid.UUID(last["id"]) in announced  # stored and handed to the pipeline
            # nothing recorded after the sanction took effect
            assert all(datetime.fromisoformat(s["started_at"]) <= wall_dropped for s in after)
            assert datetime.fromisoformat(last["ended_at"]) <= wall_dropped
            count = len(after)
            await asyncio.sleep(2.5)  # longer than a segment: no further slice appears
            assert len(await _slices(client, c)) == count

        trail = [e for e in await _get(client, f"/api/v1/sessions/{c.sid}/recording-events", c.moderator)
                 if e["user_id"] == c.student.id and e["source"] == "mic"]
        assert (trail[-1]["enabled"], trail[-1]["by"], trail[-1]["reason"]) == (False, "system", trail_reason)
        stays = [p for p in await _get(client, f"/api/v1/sessions/{c.sid}/participants", c.moderator)
                 if p["user_id"] == c.student.id]
        assert stays[-1]["left_at"] is not None and stays[-1]["left_reason"] == told

        # a reconnect with the old token (HTTP, cookie socket) or a ticket taken before is refused
        _is_error(await client.post(f"/api/v1/sessions/{c.sid}/join", headers=c.student.headers), 401, 403)
        for url, kwargs in ((stale_ticket_url, {}),
                            (websocket_url(base, f"/api/v1/sessions/{c.sid}/signal"),
                             {"additional_headers": {"Cookie": f"cg_session={c.student.token}"}, "origin": base})):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, **kwargs):  # type: ignore[arg-type]
                    pass
            assert refused.value.response.status_code in (401, 403)
            assert json.loads(refused.value.response.body or b"{}")["error"]

        if other is not None:  # the other token's connection is untouched
            assert not other.ended.is_set() and _socket(other).state.name == "OPEN"
            r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {other_token}"})
            assert r.status_code == 200
    finally:
        for bot in (student, teacher, *([other] if other else [])):
            await bot.close()


async def _poll_slices(client: httpx.AsyncClient, c: Class, until: Callable[[list[dict[str, Any]]], bool],
                       timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = await _slices(client, c)
        if until(found):
            return found
        assert time.monotonic() < deadline, f"slices not as expected: {found}"
        await asyncio.sleep(0.1)


async def test_suspension_lifted_on_appeal_lets_the_user_join_again(client: httpx.AsyncClient, base: str) -> None:
    c = await _live_class(client)
    student = await _bot(base, c.sid, c.student, "student")
    try:
        out, item = await _decide(client, c, "suspend", duration_days=7)
        await asyncio.wait_for(_socket(student).wait_closed(), 15)
    finally:
        await student.close()
    _is_error(await client.post(f"/api/v1/sessions/{c.sid}/join", headers=c.student.headers), 401, 403)

    r = await client.post("/api/v1/appeals/session", json={"identifier": c.student.email,
                                                            "password": c.student.password})
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/appeals", headers={"Authorization": f"Bearer {r.json()['token']}"},
                          json={"decision_id": out["decision"]["id"],
                                "text": "I read out the school office's number, not mine."})
    assert r.status_code == 201, r.text
    second = await logged_in(client, "moderator")
    await claim(client, second, item["id"])
    r = await client.post(f"/api/v1/appeals/{r.json()['id']}/decision", headers=second.headers, json={
        "outcome": "overturn", "reason": "the number belongs to the school",
        "explanation": "The number you read out is the school's public office line. The suspension is lifted."})
    assert r.status_code == 200, r.text

    back = await login(client, c.student)  # the suspension ended: a new login, a new join
    again = await _bot(base, c.sid, back, "student again")
    try:
        assert again.participant_id == c.student.id
        relay = relay_of()
        assert relay is not None and uuid.UUID(c.student.id) in relay.rooms[uuid.UUID(c.sid)].participants
    finally:
        await again.close()


async def test_mute_and_unmute_still_reach_the_live_class(client: httpx.AsyncClient, base: str) -> None:
    c = await _live_class(client)
    teacher = await _bot(base, c.sid, c.teacher, "teacher")
    student = await _bot(base, c.sid, c.student, "student")
    control = f"/api/v1/sessions/{c.sid}/participants/{c.student.id}"
    try:
        student.publish_mic()
        await teacher.wait_for(lambda: teacher.heard(c.student.id, "mic") > 25, 20)
        r = await client.post(f"{control}/mute", headers=c.moderator.headers, json={"reason": "noise"})
        assert r.status_code == 200 and r.json()["applied_live"] is True
        await student.wait_for(lambda: {"type": "muted", "source": "mic", "muted": True} in student.messages)
        await asyncio.sleep(0.3)
        heard = teacher.heard(c.student.id, "mic")
        await asyncio.sleep(1.0)
        assert teacher.heard(c.student.id, "mic") == heard  # muted: not forwarded
        r = await client.post(f"{control}/unmute", headers=c.moderator.headers)
        assert r.status_code == 200 and r.json()["applied_live"] is True
        await student.wait_for(lambda: {"type": "muted", "source": "mic", "muted": False} in student.messages)
        await teacher.wait_for(lambda: teacher.heard(c.student.id, "mic") > heard + 25, 15)
        assert not student.ended.is_set()  # a mute never disconnects
    finally:
        await student.close()
        await teacher.close()


@pytest.mark.redis
@pytest.mark.postgres
async def test_sign_out_on_one_node_closes_the_socket_on_the_node_that_holds_it(
    pg_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scale-out: two `classguard serve` nodes on one PostgreSQL and one Redis. The class lives on
    node-a; the student logs out through node-b, whose sign-out hook publishes on node-a's control
    channel (``cg:live:control:node-a``); node-a closes the socket."""
    import redis.asyncio as aioredis

    from classroom.live_control import CHANNEL_PREFIX
    from classroom.placement import NODE_PREFIX, ROOM_PREFIX
    from tests.classroom.live_server import scale_out_nodes
    from tests.conftest import REDIS_URL

    r = aioredis.from_url(REDIS_URL, decode_responses=True)
    for prefix in (NODE_PREFIX, ROOM_PREFIX):
        async for key in r.scan_iter(match=prefix + "*"):
            await r.delete(key)
    a, b = scale_out_nodes(tmp_path, pg_settings.database_url)
    a.start()
    b.start()
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    bots: list[Bot] = []
    try:
        teacher = a.register("t@example.com", "teacher")
        student = a.register("s@example.com", "student")
        class_id = a.make_class(teacher, [student])
        via_a = a.post(f"/api/v1/classes/{class_id}/join", teacher)
        assert via_a["relay_node"] == "node-a"
        sid = via_a["session"]["id"]
        t_bot = await Bot(await join_channel(a.base, sid, teacher.token), name="teacher").start()
        bots.append(t_bot)
        # the student asks node-b where to go: node-a, with a ticket
        s_bot = await Bot(await join_channel(b.base, sid, student.token), name="student").start()
        bots.append(s_bot)
        await t_bot.wait_for(lambda: student.id in [p["participant_id"] for p in t_bot.participants])
        await pubsub.subscribe(CHANNEL_PREFIX + "node-a")

        closed = asyncio.ensure_future(_closed(s_bot))
        dropped = asyncio.ensure_future(_when(lambda: student.id not in [p["participant_id"]
                                                                         for p in t_bot.participants]))
        t0 = time.monotonic()
        async with httpx.AsyncClient(base_url=b.base, timeout=30) as http:
            out = await http.post("/api/v1/auth/logout", headers=student.headers)
            assert out.status_code == 204, out.text
            t_closed = await closed
            t_dropped, _ = await dropped
            with capsys.disabled():
                print(f"\n[live-control] logout on node-b, socket on node-a: closed {1000 * (t_closed - t0):.0f} ms "
                      f"after the request; teacher's list dropped the student {1000 * (t_dropped - t0):.0f} ms after")
            assert {"type": "removed", "reason": "signed-out"} in s_bot.messages
            deadline = time.monotonic() + 5
            message = None
            while message is None and time.monotonic() < deadline:  # the first read may be the subscribe ack
                message = await pubsub.get_message(timeout=1)
            assert message is not None
            published = json.loads(message["data"])
            assert published["kind"] == "disconnect" and published["auth_session_id"]
            # the old token gets nothing back, on either node
            for node in (a, b):
                refused = await http.post(f"{node.base}/api/v1/sessions/{sid}/join", headers=student.headers)
                _is_error(refused, 401)
        assert not t_bot.ended.is_set()
    finally:
        for bot in bots:
            await bot.close()
        await pubsub.aclose()
        await r.aclose()
        a.stop()
        b.stop()
