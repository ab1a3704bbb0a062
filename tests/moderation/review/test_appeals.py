"""Automated restrictions from critical flags, and appeals: once per decision, to another
moderator; overturning lifts the action and clears the strike."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from accounts.models import User
from moderation.review.models import Strike
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests import factories
from tests.factories import logged_in, login
from tests.moderation.review.factory import (
    FlagSpec,
    claim,
    decide,
    decision,
    flag_slice,
    item_of_slice,
    join,
    live_room,
)

CRITICAL = FlagSpec(category="personal_data", rule_id="pii.id_number", severity="critical",
                    quote="my ID is [110101199003074514]", auto_action="suspend_pending_review")


async def user_of(user_id: uuid.UUID) -> factories.TestUser:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        u = await s.get(User, user_id)
        assert u is not None and u.email
        return factories.TestUser(id=str(u.id), email=u.email, password=factories.DEFAULT_PASSWORD, role=u.role)


async def can_login(client: httpx.AsyncClient, user: factories.TestUser) -> bool:
    r = await client.post("/api/v1/auth/login", json={"identifier": user.email, "password": user.password})
    assert r.status_code in (200, 403), r.text
    if r.status_code == 200:
        user.token = r.json()["token"]
        return True
    assert r.json()["error"] == "AccountRestricted"
    return False


async def appeal_token(client: httpx.AsyncClient, user: factories.TestUser) -> dict[str, str]:
    """A restricted user cannot log in; they get a token good only for decisions and appeals."""
    r = await client.post("/api/v1/appeals/session", json={"identifier": user.email, "password": user.password})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_automated_restriction_puts_item_on_top_and_dismissal_lifts_it(client: httpx.AsyncClient) -> None:
    room = await live_room(students=2)
    await flag_slice(room, FlagSpec(severity="high"), user_id=room.speakers[1])  # older, high
    victim = await login(client, await user_of(room.speakers[2]))
    sid, _ = await flag_slice(room, CRITICAL, user_id=room.speakers[2])
    assert not await can_login(client, victim)  # suspended at once, pending review

    mod = await logged_in(client, "moderator")
    top = (await client.get("/api/v1/moderation/queue", headers=mod.headers)).json()["items"][0]
    assert top["slice_id"] == str(sid) and top["auto_restricted"] and top["severity"] == "critical"
    detail = await claim(client, mod, top["id"])
    [auto] = detail["decisions"]
    assert auto["outcome"] == "restrict" and auto["actor_role"] == "system" and auto["automated_decision"] == "fully"
    assert [r["kind"] for r in detail["restrictions"]] == ["suspend"] and detail["restrictions"][0]["automated"]

    out = await decide(client, mod, top["id"], decision(outcome="dismiss", reason="the number is a textbook ISBN"))
    assert out["decision"]["outcome"] == "dismiss"
    assert await can_login(client, victim)
    mine = (await client.get("/api/v1/me/decisions", headers=victim.headers)).json()
    by_outcome = {s["outcome"]: s for s in mine}
    assert by_outcome["restrict"]["status"] == "lifted" and by_outcome["restrict"]["automated_decision"] == "fully"
    assert by_outcome["restrict"]["can_appeal"] is False
    assert by_outcome["dismiss"]["status"] == "dismissed" and "lifted" in by_outcome["dismiss"]["explanation"]
    events = (await client.get(f"/api/v1/moderation/items/{top['id']}/events", headers=mod.headers)).json()
    kinds = [e["kind"] for e in events]
    assert kinds == ["flag_created", "restriction_applied", "decided", "claimed", "restriction_lifted", "decided"]
    lifted = next(e for e in events if e["kind"] == "restriction_lifted")
    assert lifted["data"]["automated"] is True and lifted["actor_id"] == mod.id


async def test_automated_mute_in_the_live_class_and_confirmation_replaces_it(client: httpx.AsyncClient) -> None:
    room = await live_room()
    talker = room.speakers[-1]
    await join(room, talker)
    mute = FlagSpec(category="abuse", rule_id="abuse.threat", severity="critical", quote="[I will hurt you]",
                    auto_action="mute")
    sid, _ = await flag_slice(room, mute, user_id=talker)
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    detail = await claim(client, mod, item["id"])
    assert detail["restrictions"][0]["kind"] == "mute" and detail["restrictions"][0]["applied"]
    out = await decide(client, mod, item["id"], decision(action="suspend", duration_days=3))
    assert [a["kind"] for a in out["decision"]["applied"]] == ["suspend"]
    after = (await client.get(f"/api/v1/moderation/items/{item['id']}", headers=mod.headers)).json()
    assert [r["kind"] for r in after["restrictions"]] == ["suspend"]  # the automated mute is retired


async def test_suspended_user_appeals_and_a_second_moderator_overturns(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    student = await user_of(room.speakers[-1])
    first = await logged_in(client, "moderator")
    second = await logged_in(client, "moderator")
    item = await item_of_slice(client, first, sid)
    await claim(client, first, item["id"])
    d = (await decide(client, first, item["id"], decision(action="suspend", duration_days=7)))["decision"]
    assert not await can_login(client, student)

    wrong = await client.post("/api/v1/appeals/session", json={"identifier": student.email, "password": "nope" * 4})
    assert wrong.status_code == 401
    active = await logged_in(client, "student")
    not_restricted = await client.post("/api/v1/appeals/session",
                                       json={"identifier": active.email, "password": active.password})
    assert not_restricted.status_code == 409
    headers = await appeal_token(client, student)
    assert (await client.get("/api/v1/me", headers=headers)).status_code in (401, 403)  # nothing else
    [s] = (await client.get("/api/v1/me/decisions", headers=headers)).json()
    assert s["decision_id"] == d["id"] and s["action"] == "suspend" and s["duration_days"] == 7
    assert s["applied"][0]["kind"] == "suspend" and s["applied"][0]["until"] is not None
    assert s["can_appeal"] is True
    r = await client.post("/api/v1/appeals", headers=headers,
                          json={"decision_id": d["id"], "text": "I read out the school office's number, not mine."})
    assert r.status_code == 201, r.text
    appeal = r.json()

    refused = await client.post(f"/api/v1/moderation/items/{item['id']}/claim", headers=first.headers)
    assert refused.status_code == 403
    await claim(client, second, item["id"])
    r = await client.post(f"/api/v1/appeals/{appeal['id']}/decision", headers=second.headers, json={
        "outcome": "overturn", "reason": "the number belongs to the school",
        "explanation": "The number you read out is the school's public office line. The suspension is lifted."})
    assert r.status_code == 200, r.text
    assert r.json()["appeal"]["status"] == "overturned"

    assert await can_login(client, student)
    mine = (await client.get(f"/api/v1/me/decisions/{d['id']}", headers=student.headers)).json()
    assert mine["status"] == "overturned" and mine["appeal"]["status"] == "overturned" and not mine["can_appeal"]
    async with unit_of_work(get_runtime().sessionmaker) as sess:
        [strike] = (await sess.scalars(select(Strike).where(Strike.user_id == uuid.UUID(student.id)))).all()
    assert strike.cleared_at is not None and strike.cleared_by_appeal_id == uuid.UUID(appeal["id"])
    kinds = [e["kind"] for e in (await client.get(f"/api/v1/moderation/items/{item['id']}/events",
                                                  headers=second.headers)).json()]
    assert kinds == ["flag_created", "claimed", "restriction_applied", "strike_added", "decided", "appealed",
                     "claimed", "restriction_lifted", "strike_cleared", "overturned"]


async def test_appeal_rules(client: httpx.AsyncClient) -> None:
    room = await live_room(students=2)
    sid, _ = await flag_slice(room)
    student = await login(client, await user_of(room.speakers[-1]))
    first = await logged_in(client, "moderator")
    second = await logged_in(client, "moderator")
    item = await item_of_slice(client, first, sid)
    await claim(client, first, item["id"])
    d = (await decide(client, first, item["id"], decision(action="warn")))["decision"]

    other = await login(client, await user_of(room.speakers[1]))
    r = await client.post("/api/v1/appeals", json={"decision_id": d["id"], "text": "This is not about me at all."},
                          headers=other.headers)
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    short = await client.post("/api/v1/appeals", json={"decision_id": d["id"], "text": "no"},
                              headers=student.headers)
    assert short.status_code == 422
    r = await client.post("/api/v1/appeals", json={"decision_id": d["id"],
                                                   "text": "I read out the school's office number, not mine."},
                          headers=student.headers)
    assert r.status_code == 201, r.text
    appeal = r.json()
    assert appeal["status"] == "open"
    twice = await client.post("/api/v1/appeals", json={"decision_id": d["id"], "text": "Please look again at it."},
                              headers=student.headers)
    assert twice.status_code == 409 and twice.json()["error"] == "Conflict"

    listed = await item_of_slice(client, second, sid)
    assert listed["status"] == "appealed"
    refused = await client.post(f"/api/v1/moderation/items/{item['id']}/claim", headers=first.headers)
    assert refused.status_code == 403 and "another moderator" in refused.json()["detail"]
    assert (await client.post("/api/v1/moderation/queue/claim-next", headers=first.headers)).json()["item"] is None
    not_via_decide = await decide(client, second, item["id"], decision(outcome="dismiss"), expect=409)
    assert "appeal" in not_via_decide["detail"]
    detail = await claim(client, second, item["id"])
    assert detail["open_appeal"]["id"] == appeal["id"]
    assert detail["open_appeal"]["text"] == "I read out the school's office number, not mine."

    body = {"outcome": "uphold", "reason": "it was their own number",
            "explanation": "The number you read out is registered to you, not the school."}
    r = await client.post(f"/api/v1/appeals/{appeal['id']}/decision", json=body, headers=second.headers)
    assert r.status_code == 200, r.text
    assert r.json()["appeal"]["status"] == "upheld" and r.json()["item"]["status"] == "decided"
    again = await client.post(f"/api/v1/appeals/{appeal['id']}/decision", json=body, headers=second.headers)
    assert again.status_code == 200 and again.json()["replayed"] is True
    flip = await client.post(f"/api/v1/appeals/{appeal['id']}/decision", headers=second.headers,
                             json={**body, "outcome": "overturn"})
    assert flip.status_code == 409
    mine = (await client.get(f"/api/v1/me/decisions/{d['id']}", headers=student.headers)).json()
    assert mine["status"] == "in_force" and mine["appeal"]["status"] == "upheld" and mine["can_appeal"] is False
    assert mine["appeal"]["outcome_explanation"].startswith("The number you read out")
    seen = await client.get(f"/api/v1/appeals/{appeal['id']}", headers=student.headers)
    assert seen.status_code == 200 and "outcome_reason" not in seen.json()
    assert (await client.get(f"/api/v1/appeals/{appeal['id']}", headers=other.headers)).status_code == 404


async def test_strike_count_after_overturn_starts_again(client: httpx.AsyncClient) -> None:
    """An overturned strike no longer counts: the next violation is strike 1 again."""
    room = await live_room()
    student = await user_of(room.speakers[-1])
    first = await logged_in(client, "moderator")
    second = await logged_in(client, "moderator")
    a, _ = await flag_slice(room)
    item = await item_of_slice(client, first, a)
    await claim(client, first, item["id"])
    d = (await decide(client, first, item["id"], decision(action="warn")))["decision"]
    await can_login(client, student)
    appeal = (await client.post("/api/v1/appeals", headers=student.headers,
                                json={"decision_id": d["id"], "text": "That was a quote from the textbook."})).json()
    await claim(client, second, item["id"])
    r = await client.post(f"/api/v1/appeals/{appeal['id']}/decision", headers=second.headers, json={
        "outcome": "overturn", "reason": "textbook quote", "explanation": "You were quoting the textbook."})
    assert r.status_code == 200
    b, _ = await flag_slice(room)
    item_b = await item_of_slice(client, first, b)
    await claim(client, first, item_b["id"])
    d2 = (await decide(client, first, item_b["id"], decision(action="warn")))["decision"]
    assert d2["strike_number"] == 1 and [x["kind"] for x in d2["applied"]] == ["warn"]


async def test_appeal_against_an_automated_restriction_is_answered_by_the_review(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room, CRITICAL)
    student = await user_of(room.speakers[-1])
    assert not await can_login(client, student)
    headers = await appeal_token(client, student)
    [s] = (await client.get("/api/v1/me/decisions", headers=headers)).json()
    assert s["outcome"] == "restrict" and s["status"] == "pending_review" and s["can_appeal"]
    assert s["automated_decision"] == "fully" and s["applied"][0]["source"] == "policy"
    r = await client.post("/api/v1/appeals", headers=headers,
                          json={"decision_id": s["decision_id"], "text": "That number is a book's ISBN."})
    assert r.status_code == 201, r.text

    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    assert item["status"] == "new" and item["auto_restricted"]  # still at the top, for any moderator
    detail = await claim(client, mod, item["id"])
    assert detail["open_appeal"]["text"] == "That number is a book's ISBN."
    await decide(client, mod, item["id"], decision(outcome="dismiss", reason="ISBN, not a phone number"))
    assert await can_login(client, student)
    mine = {d["outcome"]: d for d in (await client.get("/api/v1/me/decisions", headers=student.headers)).json()}
    assert mine["restrict"]["appeal"]["status"] == "overturned" and mine["restrict"]["status"] == "lifted"
