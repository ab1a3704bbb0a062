"""Review's part in the privacy promises: evidence media is held while a case is open; a
cancelled account is unlinked from the event log and its appeal texts removed; the data
export carries the decisions about the user."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from accounts.models import User
from moderation.review import privacy
from moderation.review.models import Appeal, ModerationEvent
from storage.db import unit_of_work
from storage.retention import Candidate
from storage.runtime import get_runtime
from tests import factories
from tests.factories import logged_in, login
from tests.moderation.review.factory import claim, decide, decision, flag_slice, item_of_slice, live_room


async def test_media_of_open_cases_is_held(client: httpx.AsyncClient) -> None:
    room = await live_room(students=2)
    open_sid, _ = await flag_slice(room, user_id=room.speakers[1])
    decided_sid, _ = await flag_slice(room, user_id=room.speakers[2])
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, decided_sid)
    await claim(client, mod, item["id"])
    await decide(client, mod, item["id"], decision(outcome="dismiss"))
    unflagged = uuid.uuid4()
    candidates = [Candidate(key=f"k/{s}", ref=str(s)) for s in (open_sid, decided_sid, unflagged)]
    async with unit_of_work(get_runtime().sessionmaker) as s:
        assert await privacy.retention_hold(s, candidates) == {str(open_sid)}


async def test_cancellation_unlinks_the_event_log_and_export_has_decisions(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    async with unit_of_work(get_runtime().sessionmaker) as s:
        u = await s.get(User, room.speakers[-1])
        assert u is not None and u.email
        student = factories.TestUser(id=str(u.id), email=u.email, password=factories.DEFAULT_PASSWORD, role=u.role)
    await login(client, student)
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    await claim(client, mod, item["id"])
    d = (await decide(client, mod, item["id"], decision(action="warn")))["decision"]
    r = await client.post("/api/v1/appeals", headers=student.headers,
                          json={"decision_id": d["id"], "text": "My private reasons, with personal details."})
    assert r.status_code == 201

    export = await client.get("/api/v1/me/export", headers=student.headers)
    assert export.status_code == 200
    [stmt] = export.json()["moderation_decisions"]
    assert stmt["decision_id"] == d["id"] and stmt["appeal"]["status"] == "open"

    r = await client.post("/api/v1/me/cancel", json={"password": student.password}, headers=student.headers)
    assert r.status_code == 204, r.text
    async with unit_of_work(get_runtime().sessionmaker) as s:
        linked = (await s.scalars(select(ModerationEvent).where(
            ModerationEvent.subject_user_id == uuid.UUID(student.id)))).all()
        mine = (await s.scalars(select(ModerationEvent).where(ModerationEvent.actor_id == uuid.UUID(student.id)))).all()
        [appeal] = (await s.scalars(select(Appeal))).all()
        kinds = (await s.scalars(select(ModerationEvent.kind).where(
            ModerationEvent.item_id == uuid.UUID(item["id"])))).all()
    assert linked == [] and mine == []
    assert appeal.text == privacy.REMOVED
    assert "appealed" in kinds  # the lines stay
