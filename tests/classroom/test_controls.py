"""Moderation controls that outlive a connection: a mute holds across leave + rejoin (stored, and
re-applied by the relay before anything is forwarded or recorded), and a removal can be undone."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from classguard.settings import Settings
from classroom import events
from classroom.live import relay_of
from classroom.recorder import SourceRecorder
from tests.classroom.class_factories import Attendee, attend, join, make_class
from tests.factories import TestUser, logged_in


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.segment_seconds = 2.0  # slices close quickly
    return settings


@pytest.fixture(autouse=True)
def classroom_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No moderation pipeline consumes the slices here (it is wired and tested elsewhere)."""
    monkeypatch.setattr(events, "slice_created_hooks", [])


async def _poll(fetch: Callable[[], Awaitable[Any]], until: Callable[[Any], bool], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if until(value):
            return value
        assert time.monotonic() < deadline, f"condition not met in {timeout}s; last value: {value!r}"
        await asyncio.sleep(0.1)


def _is_error(r: httpx.Response, status: int, name: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"] == name and r.json()["detail"], r.json()


def _told_muted(a: Attendee, muted: bool = True) -> bool:
    return any(m.get("type") == "muted" and m["source"] == "mic" and m["muted"] is muted for m in a.bot.messages)


def _mic_source(session_id: str, user: TestUser) -> Any:
    """The relay's encoded source of the user's mic (its counters show what arrived and was gated)."""
    relay = relay_of()
    assert relay is not None
    room = relay.rooms[uuid.UUID(session_id)]
    return room.participants[uuid.UUID(user.id)].sources["mic"].bound


class _Api:
    def __init__(self, client: httpx.AsyncClient, session_id: str, viewer: TestUser) -> None:
        self.client, self.base, self.viewer = client, f"/api/v1/sessions/{session_id}", viewer

    async def get(self, what: str) -> Any:
        r = await self.client.get(f"{self.base}/{what}", headers=self.viewer.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def mic_slices(self, user: TestUser) -> list[dict[str, Any]]:
        return [s for s in await self.get("slices") if s["user_id"] == user.id and s["source"] == "mic"]

    async def control(self, action: str, target: TestUser, by: TestUser, **body: Any) -> httpx.Response:
        return await self.client.post(f"{self.base}/participants/{target.id}/{action}", headers=by.headers,
                                      json=body or None)


async def test_mute_survives_leave_and_rejoin_until_unmuted(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    moderator = await logged_in(client, "moderator")
    api = _Api(client, sid, moderator)
    student_id = setup.student.id
    teacher = await attend(sid, setup.teacher, "teacher")
    student = await attend(sid, setup.student, "student")
    rejoined: Attendee | None = None
    try:
        student.bot.publish_mic()
        await teacher.bot.wait_for(lambda: teacher.bot.heard(student_id, "mic") > 25, 15)
        r = await api.control("mute", setup.student, moderator, reason="shared a phone number")
        assert r.status_code == 200 and r.json()["applied_live"] is True
        await student.bot.wait_for(lambda: _told_muted(student))
        await student.leave()  # returns once the relay has closed and stored the student's segments

        muted_slices = await api.mic_slices(setup.student)
        assert muted_slices and muted_slices[-1]["close_reason"] == "muted"
        trail_at_mute = await api.get("recording-events")
        heard_at_mute = teacher.bot.heard(student_id, "mic")

        # rejoin and publish again: the stored mute is back before the first packet
        rejoined = await attend(sid, setup.student, "student again")
        await rejoined.bot.wait_for(lambda: _told_muted(rejoined))
        rejoined.bot.publish_mic()

        def mic_state() -> dict[str, Any]:
            mine = [p for p in rejoined.bot.participants if p["participant_id"] == student_id]
            return mine[0]["sources"]["mic"] if mine else {}

        await rejoined.bot.wait_for(lambda: mic_state().get("enabled") and mic_state().get("active"), 15)
        assert mic_state()["muted"] is True and mic_state()["recording"] is False
        # a second's worth of packets arrives at the relay and is dropped at the gate
        await rejoined.bot.wait_for(lambda: _mic_source(sid, setup.student).packets_dropped_closed > 50, 15)
        source = _mic_source(sid, setup.student)
        assert not source.open
        relay = relay_of()
        assert relay is not None
        recorder = relay.rooms[uuid.UUID(sid)].participants[uuid.UUID(student_id)].recorders["mic"]
        assert isinstance(recorder, SourceRecorder)
        assert recorder.segment is None and recorder.closed_segments == 0
        assert teacher.bot.heard(student_id, "mic") == heard_at_mute  # the class does not hear it
        assert await api.get("recording-events") == trail_at_mute  # nothing switched on
        live = (await api.get("live"))["participants"]
        assert [p["sources"]["mic"]["muted"] for p in live if p["participant_id"] == student_id] == [True]

        # unmute: heard and recorded again, attributed to the teacher
        unmuted_at = datetime.now(UTC)
        r = await api.control("unmute", setup.student, setup.teacher)
        assert r.status_code == 200 and r.json()["applied_live"] is True
        await rejoined.bot.wait_for(lambda: _told_muted(rejoined, muted=False))
        await teacher.bot.wait_for(lambda: teacher.bot.heard(student_id, "mic") > heard_at_mute + 25, 15)
        trail = await _poll(lambda: api.get("recording-events"), lambda ev: len(ev) > len(trail_at_mute))
        assert (trail[-1]["enabled"], trail[-1]["by"], trail[-1]["by_user_id"]) == (True, "moderator",
                                                                                    setup.teacher.id)
        await asyncio.sleep(0.5)
        await rejoined.leave()
    finally:
        await student.leave()
        if rejoined is not None:
            await rejoined.leave()
        await teacher.leave()

    after = await api.mic_slices(setup.student)
    new = [s for s in after if s["id"] not in {m["id"] for m in muted_slices}]
    assert new and all(datetime.fromisoformat(s["started_at"]) >= unmuted_at for s in new), new
    assert sum(s["duration_s"] for s in new) > 0.5
    # the rejoined connection's segments continue the numbering (none collides with a stored slice)
    assert [s["seq"] for s in after] == list(range(len(after)))

    controls = await api.get("control-events")
    assert [(c["action"], c["source"], c["by_user_id"], c["reason"]) for c in controls] == [
        ("mute", "mic", moderator.id, "shared a phone number"), ("unmute", "mic", setup.teacher.id, None)]


async def test_mute_applied_while_away_holds_when_they_join(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    api = _Api(client, sid, setup.teacher)
    first = await attend(sid, setup.student, "student")
    await first.leave()
    r = await api.control("mute", setup.student, setup.teacher, source="screen")
    assert r.status_code == 200 and r.json()["applied_live"] is False
    again = await attend(sid, setup.student, "student")
    try:
        await again.bot.wait_for(lambda: any(m.get("type") == "muted" and m["source"] == "screen" and m["muted"]
                                             for m in again.bot.messages))
        live = (await api.get("live"))["participants"]
        (mine,) = [p for p in live if p["participant_id"] == setup.student.id]
        assert mine["sources"]["screen"]["muted"] is True and mine["sources"]["mic"]["muted"] is False
    finally:
        await again.leave()
    # the student sees the control applied to them in the log; an outsider sees nothing
    mine_only = await _Api(client, sid, setup.student).get("control-events")
    assert [(c["action"], c["source"], c["user_id"]) for c in mine_only] == [("mute", "screen", setup.student.id)]
    outsider = await logged_in(client, "student")
    _is_error(await client.get(f"/api/v1/sessions/{sid}/control-events", headers=outsider.headers),
              403, "Forbidden")


async def test_removed_participant_can_be_readmitted(client: httpx.AsyncClient) -> None:
    setup = await make_class(client, students=2)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    moderator = await logged_in(client, "moderator")
    api = _Api(client, sid, moderator)
    student, other = setup.students
    _is_error(await api.control("readmit", student, moderator), 404, "NotFound")  # never joined

    a = await attend(sid, student, "student")
    try:
        _is_error(await api.control("readmit", student, moderator), 409, "Conflict")  # not removed
        r = await api.control("remove", student, moderator, reason="abuse")
        assert r.status_code == 200 and r.json()["applied_live"] is True
        await asyncio.wait_for(a.bot.ended.wait(), 10)
    finally:
        await a.leave()
    _is_error(await client.post(f"/api/v1/sessions/{sid}/join", headers=student.headers), 403, "Forbidden")

    # only the class's teacher or staff may readmit
    for who in (student, other):
        _is_error(await api.control("readmit", student, who), 403, "Forbidden")
    r = await api.control("readmit", student, setup.teacher, reason="apologised")
    assert r.status_code == 200 and r.json() == {"session_id": sid, "user_id": student.id, "action": "readmit",
                                                 "applied_live": False}
    _is_error(await api.control("readmit", student, setup.teacher), 409, "Conflict")  # already readmitted

    r = await client.post(f"/api/v1/sessions/{sid}/join", headers=student.headers)
    assert r.status_code == 200 and r.json()["session"]["id"] == sid
    back = await attend(sid, student, "student")
    try:
        await back.bot.wait_for(lambda: any(p["participant_id"] == student.id for p in back.bot.participants))
        # removable again, and the latest control decides
        r = await api.control("remove", student, moderator)
        assert r.status_code == 200
        await asyncio.wait_for(back.bot.ended.wait(), 10)
    finally:
        await back.leave()
    _is_error(await client.post(f"/api/v1/sessions/{sid}/join", headers=student.headers), 403, "Forbidden")

    controls = await api.get("control-events")
    assert [(c["action"], c["by_user_id"], c["reason"]) for c in controls] == [
        ("remove", moderator.id, "abuse"), ("readmit", setup.teacher.id, "apologised"), ("remove", moderator.id, None)]
    stays = [p for p in await api.get("participants") if p["user_id"] == student.id]
    assert [p["left_reason"] for p in stays] == ["removed", "removed"]

    # a readmission after the class ended is refused
    assert (await client.post(f"/api/v1/sessions/{sid}/end", headers=setup.teacher.headers)).status_code == 200
    _is_error(await api.control("readmit", student, setup.teacher), 409, "Conflict")
