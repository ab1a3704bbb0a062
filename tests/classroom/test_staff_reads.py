"""Staff reads of who was in a class (privacy promise 3): a moderator's view of the enrollments,
the session's participants (stored and live), the control and recording trails and the slices is
access-logged for every person it names; the class's own teacher reading them is not."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.classroom.class_factories import attend, join, make_class
from tests.factories import TestUser, logged_in


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

