"""Decisions and their enforcement through the HTTP API: suspensions and bans stop logins,
live-class mutes and ends act on the classroom, the strike table escalates, repeats are
idempotent, and bad input is refused without losing anything."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from accounts.models import User
from classroom.models import LiveSession, RecordingEvent
from moderation.review.models import Decision, Restriction, Strike
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests import factories
from tests.factories import logged_in, login
from tests.moderation.review.factory import (
    claim,
    decide,
    decision,
    flag_slice,
    item_of_slice,
    join,
    live_room,
)


async def login_status(client: httpx.AsyncClient, email: str) -> int:
    r = await client.post("/api/v1/auth/login", json={"identifier": email, "password": "correct horse battery"})
    return r.status_code


async def student_of(room_user: uuid.UUID) -> factories.TestUser:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        u = await s.get(User, room_user)
        assert u is not None and u.email
        return factories.TestUser(id=str(u.id), email=u.email, password="correct horse battery", role=u.role)


async def rows(model: type[Any], **where: object) -> list[Any]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        stmt: Any = select(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return list((await s.scalars(stmt)).all())


async def test_confirm_suspension_blocks_login_and_explains_to_the_user(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    student = await login(client, await student_of(room.speakers[-1]))
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    await claim(client, mod, item["id"])

    out = await decide(client, mod, item["id"], decision(action="suspend", duration_days=7,
                                                         internal_note="second time this month"))
    d = out["decision"]
    assert out["replayed"] is False and out["item"]["status"] == "decided"
    assert d["outcome"] == "confirm" and d["action"] == "suspend" and d["duration_days"] == 7
    assert d["strike_number"] == 1 and d["automated_decision"] == "partially"
    assert [a["kind"] for a in d["applied"]] == ["suspend"] and d["applied"][0]["applied"]

    assert await login_status(client, student.email) == 403
    me = await client.get("/api/v1/me", headers=student.headers)  # the open session is gone too
    assert me.status_code in (401, 403)

    # What was stored (the user's own view is in test_user_sees_statement_of_reasons).
    [row] = await rows(Decision, item_id=uuid.UUID(item["id"]))
    assert row.internal_note == "second time this month" and row.visible_to_user
    assert row.evidence[0]["quote"] == "my number is [5551234567]" and row.evidence[0]["start_s"] == 2.0
    [r] = await rows(Restriction, decision_id=row.id)
    assert r.kind == "suspend" and r.until is not None and not r.automated


async def test_user_sees_statement_of_reasons(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    student = await login(client, await student_of(room.speakers[-1]))
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    await claim(client, mod, item["id"])
    await decide(client, mod, item["id"], decision(action="warn", internal_note="secret staff note"))

    r = await client.get("/api/v1/me/decisions", headers=student.headers)
    assert r.status_code == 200
    [s] = r.json()
    assert s["outcome"] == "confirm" and s["action"] == "warn" and s["status"] == "in_force"
    assert s["detected"] == {"category": "off_platform_contact", "rule_id": "contact.phone", "rule_version": "1",
                             "policy_version": "test-policy-1"}
    assert s["automated_detection"] is True and s["automated_decision"] == "partially"
    assert s["evidence"][0]["quote"] == "my number is [5551234567]"
    assert s["evidence"][0]["start_s"] == 2.0 and s["evidence"][0]["end_s"] == 5.0
    assert "phone number" in s["explanation"] and s["can_appeal"] is True and s["strike_number"] == 1
    assert "secret staff note" not in r.text and "off-platform" not in r.text  # internal note and reason stay inside
    one = await client.get(f"/api/v1/me/decisions/{s['decision_id']}", headers=student.headers)
    assert one.status_code == 200 and one.json() == s
    other = await logged_in(client, "student")
    assert (await client.get(f"/api/v1/me/decisions/{s['decision_id']}", headers=other.headers)).status_code == 404
    assert (await client.get("/api/v1/me/decisions", headers=other.headers)).json() == []


async def test_strike_table_escalates_repeated_violations(client: httpx.AsyncClient) -> None:
    # default table: 1 → warn, 2 → suspend:7, 3 → ban
    room = await live_room()
    student = await student_of(room.speakers[-1])
    mod = await logged_in(client, "moderator")
    results = []
    for n in range(1, 4):
        # The same hit again after a decision: a new case, and a new strike.
        sid, _ = await flag_slice(room)
        item = await item_of_slice(client, mod, sid)
        await claim(client, mod, item["id"])
        results.append((await decide(client, mod, item["id"], decision(action="warn")))["decision"])
        if n == 1:
            assert await login_status(client, student.email) == 200
        if n == 2:
            assert await login_status(client, student.email) == 403
    assert [d["strike_number"] for d in results] == [1, 2, 3]
    assert [d["strike_action"] for d in results] == ["warn", "suspend:7", "ban"]
    assert [[a["kind"] for a in d["applied"]] for d in results] == [["warn"], ["warn", "suspend"], ["warn", "ban"]]
    assert results[1]["applied"][1]["source"] == "strike_table"
    [user] = await rows(User, id=uuid.UUID(student.id))
    assert user.status == "banned"


async def test_repeated_decision_is_idempotent_and_counts_one_strike(client: httpx.AsyncClient) -> None:
    room = await live_room(students=3)
    a = (await flag_slice(room, user_id=room.speakers[1]))[0]
    b = (await flag_slice(room, user_id=room.speakers[2]))[0]
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, a)
    await claim(client, mod, item["id"])
    body = decision(action="warn")
    first = await decide(client, mod, item["id"], body, key="k-1")
    again = await decide(client, mod, item["id"], body, key="k-1")
    assert again["replayed"] is True and again["decision"]["id"] == first["decision"]["id"]
    same_body = await decide(client, mod, item["id"], body)  # no key: same moderator, same payload
    assert same_body["replayed"] is True and same_body["decision"]["id"] == first["decision"]["id"]
    other_body = await decide(client, mod, item["id"], decision(action="ban"), expect=409)
    assert other_body["error"] == "Conflict"
    reused_key = await decide(client, mod, item["id"], decision(action="ban"), key="k-1", expect=409)
    assert "Idempotency-Key" in reused_key["detail"]
    assert len(await rows(Strike, decision_id=uuid.UUID(first["decision"]["id"]))) == 1
    assert len(await rows(Decision, item_id=uuid.UUID(item["id"]))) == 1

    # "decide and next": the answer carries the next item, already claimed.
    item_b = await item_of_slice(client, mod, b)
    nxt_body = decision(outcome="dismiss")
    r = await client.post(f"/api/v1/moderation/items/{item_b['id']}/claim", headers=mod.headers)
    assert r.status_code == 200
    extra = (await flag_slice(room, user_id=room.speakers[3]))[0]
    r = await client.post(f"/api/v1/moderation/items/{item_b['id']}/decision", params={"next": "true"},
                          json=nxt_body, headers=mod.headers)
    assert r.status_code == 200, r.text
    assert r.json()["next_item"]["slice_id"] == str(extra) and r.json()["next_item"]["you_hold_lease"]


async def test_deciding_without_the_lease_is_409(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    a = await logged_in(client, "moderator")
    b = await logged_in(client, "moderator")
    item = await item_of_slice(client, a, sid)
    unclaimed = await decide(client, a, item["id"], decision(), expect=409)
    assert "claim" in unclaimed["detail"]
    await claim(client, a, item["id"])
    leased = await decide(client, b, item["id"], decision(), expect=409)
    assert leased["error"] == "Conflict" and "another moderator" in leased["detail"]
    missing = await decide(client, a, str(uuid.uuid4()), decision(), expect=404)
    assert missing["error"] == "NotFound"


@pytest.mark.parametrize("body, why", [
    ({"outcome": "confirm", "reason": "contact details", "explanation": "You shared your phone number."},
     "needs an action"),
    ({"outcome": "confirm", "action": "suspend", "reason": "contact details",
      "explanation": "You shared your phone number."}, "duration_days"),
    ({"outcome": "confirm", "action": "warn", "reason": "contact details"}, "explanation"),
    ({"outcome": "dismiss", "reason": "   "}, "reason"),
    ({"outcome": "dismiss", "action": "ban", "reason": "nothing wrong"}, "takes no action"),
    ({"outcome": "confirm", "action": "kick", "reason": "x" * 5, "explanation": "y" * 20}, "action"),
    ({"outcome": "confirm", "action": "suspend", "duration_days": 0, "reason": "x" * 5,
      "explanation": "y" * 20}, "duration_days"),
])
async def test_bad_decisions_are_422_and_leave_the_item_as_it_was(client: httpx.AsyncClient, body: dict[str, object],
                                                                  why: str) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    await claim(client, mod, item["id"])
    out = await decide(client, mod, item["id"], body, expect=422)
    assert out["error"] == "ValidationError" and why in out["detail"]
    still = await item_of_slice(client, mod, sid)
    assert still["status"] == "in_review" and still["claimed_by"] == mod.id
    assert await rows(Decision, item_id=uuid.UUID(item["id"])) == []


async def test_escalation_goes_to_admins(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    mod = await logged_in(client, "moderator")
    other = await logged_in(client, "moderator")
    admin = await logged_in(client, "admin")
    item = await item_of_slice(client, mod, sid)
    await claim(client, mod, item["id"])
    out = await decide(client, mod, item["id"], {"outcome": "escalate", "reason": "looks like grooming; admin call"})
    assert out["item"]["status"] == "escalated" and out["decision"]["outcome"] == "escalate"
    refused = await client.post(f"/api/v1/moderation/items/{item['id']}/claim", headers=other.headers)
    assert refused.status_code == 403
    none = await client.post("/api/v1/moderation/queue/claim-next", headers=other.headers)
    assert none.json()["item"] is None
    got = await client.post("/api/v1/moderation/queue/claim-next", headers=admin.headers)
    assert got.json()["item"]["id"] == item["id"]
    again = await decide(client, admin, item["id"], {"outcome": "escalate", "reason": "again"}, expect=409)
    assert "already escalated" in again["detail"]
    done = await decide(client, admin, item["id"], decision(action="ban"))
    assert done["decision"]["actor_role"] == "admin" and done["item"]["status"] == "decided"
    student = await student_of(room.speakers[-1])
    assert await login_status(client, student.email) == 403
    s = await client.get("/api/v1/moderation/queue", params={"status": "decided"}, headers=admin.headers)
    assert [i["id"] for i in s.json()["items"]] == [item["id"]]


async def test_mute_and_end_class_act_on_the_live_class(client: httpx.AsyncClient) -> None:
    room = await live_room(students=2)
    talker, other = room.speakers[1], room.speakers[2]
    await join(room, talker)
    await join(room, other)
    mod = await logged_in(client, "moderator")
    sid, _ = await flag_slice(room, user_id=talker)
    item = await item_of_slice(client, mod, sid)
    await claim(client, mod, item["id"])
    out = await decide(client, mod, item["id"], decision(action="mute"))
    assert out["decision"]["applied"][0] == {**out["decision"]["applied"][0], "kind": "mute", "applied": True}
    trail = await rows(RecordingEvent, session_id=room.session_id, user_id=talker)
    assert [(e.source, e.enabled, e.by, e.by_user_id) for e in trail][-1] == ("mic", False, "moderator",
                                                                               uuid.UUID(mod.id))

    sid2, _ = await flag_slice(room, user_id=other)
    item2 = await item_of_slice(client, mod, sid2)
    await claim(client, mod, item2["id"])
    out = await decide(client, mod, item2["id"], decision(action="end_class"))
    assert out["decision"]["applied"][0]["kind"] == "end_class" and out["decision"]["applied"][0]["applied"]
    [ls] = await rows(LiveSession, id=room.session_id)
    assert ls.status == "ended" and ls.ended_by == uuid.UUID(mod.id)

    # A mute decided after the class ended is recorded as not applied (and says why).
    sid3, _ = await flag_slice(room, user_id=talker)
    item3 = await item_of_slice(client, mod, sid3)
    await claim(client, mod, item3["id"])
    out = await decide(client, mod, item3["id"], decision(action="mute"))
    assert out["decision"]["applied"][0]["applied"] is False and "ended" in out["decision"]["applied"][0]["note"]
