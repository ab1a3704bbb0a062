"""Staff reads of who was in a class (privacy promise 3): a moderator's view of the enrollments,
the session's participants (stored and live), the control and recording trails and the slices is
access-logged for every person it names; the class's own teacher reading them is not."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx

from accounts.models import User
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.classroom.class_factories import attend, join, make_class
from tests.factories import DEFAULT_PASSWORD, TestUser, logged_in, login
from tests.moderation.slice_factory import add_raw_slice, live_room


async def _staff_reads(client: httpx.AsyncClient, person: TestUser) -> Counter[str]:
    r = await client.get("/api/v1/me/access-log", headers=person.headers)
    assert r.status_code == 200, r.text
    return Counter(e["resource_type"] for e in r.json() if e["actor_role"] in ("moderator", "admin"))


async def _until_mic_on(client: httpx.AsyncClient, path: str, teacher: TestUser) -> None:
    for _ in range(200):  # the bot's offer is answered on the event loop; wait for its "mic on"
        r = await client.get(path, headers=teacher.headers)
        if any(e["enabled"] for e in r.json()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the mic never went on")


async def test_staff_views_of_participants_are_access_logged(client: httpx.AsyncClient) -> None:
    setup = await make_class(client, students=2)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    base = f"/api/v1/sessions/{sid}"
    student = await attend(sid, setup.student, "student")
    try:
        student.bot.publish_mic()
        await _until_mic_on(client, f"{base}/recording-events", setup.teacher)
        # the class's teacher looks: part of teaching, not a staff read
        for path in (f"/api/v1/classes/{setup.id}/enrollments", f"{base}/participants", f"{base}/live",
                     f"{base}/recording-events", f"{base}/control-events"):
            assert (await client.get(path, headers=setup.teacher.headers)).status_code == 200, path
        assert await _staff_reads(client, setup.student) == Counter()

        moderator = await logged_in(client, "moderator")
        r = await client.get(f"{base}/live", headers=moderator.headers)
        assert [p["participant_id"] for p in r.json()["participants"]] == [setup.student.id]
        r = await client.get(f"{base}/participants", headers=moderator.headers)
        assert [p["user_id"] for p in r.json()] == [setup.student.id]
        r = await client.get(f"/api/v1/classes/{setup.id}/enrollments", headers=moderator.headers)
        assert {e["student_id"] for e in r.json()} == {s.id for s in setup.students}
        assert (await client.get(f"{base}/recording-events", headers=moderator.headers)).json()
        assert (await client.get(f"{base}/control-events", headers=moderator.headers)).status_code == 200
    finally:
        await student.leave()

    assert await _staff_reads(client, setup.student) == Counter(
        {"live_participants": 1, "session_participants": 1, "class_enrollments": 1, "recording_events": 1})
    # the student who never joined appears only in the enrollment list
    assert await _staff_reads(client, setup.students[1]) == Counter({"class_enrollments": 1})



async def test_staff_views_of_slices_are_access_logged(client: httpx.AsyncClient) -> None:
    room = await live_room(students=1)
    speaker = room.speakers[-1]
    slice_id = await add_raw_slice(room, b"not media", user_id=speaker, announce=False)
    student = await login(client, await _user(speaker))
    moderator = await logged_in(client, "moderator")
    for path in (f"/api/v1/sessions/{room.session_id}/slices", f"/api/v1/slices?user_id={speaker}",
                 f"/api/v1/slices/{slice_id}"):
        r = await client.get(path, headers=moderator.headers)
        assert r.status_code == 200 and str(slice_id) in r.text, path
    assert await _staff_reads(client, student) == Counter({"slice_list": 2, "slice": 1})


async def _user(user_id: uuid.UUID) -> TestUser:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        u = await s.get(User, user_id)
        assert u is not None and u.email
        return TestUser(id=str(u.id), email=u.email, password=DEFAULT_PASSWORD, role=u.role)
