"""Cases through the HTTP API: the flags of one participant in one live session and one category
gather in one case while the class runs; one decision covers the whole case (one enforcement,
one strike); a hit after the decision opens a new case."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from moderation.events import announce_flags_stored
from moderation.review import privacy
from moderation.review.models import Decision, Restriction, ReviewItem, Strike
from storage.db import unit_of_work
from storage.retention import Candidate
from storage.runtime import get_runtime
from tests.factories import logged_in, login
from tests.moderation.review.factory import (
    NOT_DECODED,
    FlagSpec,
    claim,
    decide,
    decision,
    flag_slice,
    item_of_slice,
    join,
    live_room,
)
from tests.moderation.review.test_appeals import user_of

SLIDE = FlagSpec(rule_id="contact.email", quote="[li.wei.tutor@gmail.com]", source="screen",
                 evidence={"frame_time": 1.0}, start_ms=1000, end_ms=1000)


async def rows(model: type[Any], **where: object) -> list[Any]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        stmt: Any = select(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return list((await s.scalars(stmt)).all())


async def queue(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/moderation/queue", params={"limit": "200", **params}, headers=headers)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def held(slice_ids: list[uuid.UUID]) -> set[str]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        return await privacy.retention_hold(s, [Candidate(key=f"k/{i}", ref=str(i)) for i in slice_ids])


async def test_a_slide_on_screen_for_many_slices_is_one_case_and_one_decision_closes_it(
        client: httpx.AsyncClient) -> None:
    room = await live_room(students=2)
    talker, other = room.speakers[1], room.speakers[2]
    await join(room, talker)
    slide = [(await flag_slice(room, SLIDE, user_id=talker, source="screen", media=NOT_DECODED))[0]
             for _ in range(12)]
    paid, _ = await flag_slice(room, FlagSpec(category="payment_bypass", rule_id="payment.bypass",
                                              quote="[pay me directly]"), user_id=talker, media=NOT_DECODED)
    others, _ = await flag_slice(room, SLIDE, user_id=other, source="screen", media=NOT_DECODED)
    mod = await logged_in(client, "moderator")

    items = await queue(client, mod.headers)
    assert len(items) == 3  # not 14: one case per participant and category
    case = await item_of_slice(client, mod, slide[0])
    assert {(await item_of_slice(client, mod, s))["id"] for s in slide} == {case["id"]}
    assert case["slice_count"] == 12 and case["flag_count"] == 12 and case["category"] == "off_platform_contact"
    assert case["slice_id"] == str(slide[0])
    assert (await item_of_slice(client, mod, paid))["id"] != case["id"]
    assert (await item_of_slice(client, mod, others))["id"] != case["id"]

    detail = await claim(client, mod, case["id"])
    assert [s["id"] for s in detail["slices"]] == [str(s) for s in slide]
    hits = [t for t in detail["timeline"] if t["kind"] == "flag"]
    assert [t["slice_id"] for t in hits] == [str(s) for s in slide]
    assert [t["at"] for t in hits] == sorted(t["at"] for t in hits)
    assert all(t["quote"] == "[li.wei.tutor@gmail.com]" for t in hits)
    # The speaker was nudged once for the case (not once per slice), and it is on the timeline.
    assert [t["kind"] for t in detail["timeline"]].count("live_nudge") == 1

    out = await decide(client, mod, case["id"], decision(action="mute"))
    d = out["decision"]
    assert d["strike_number"] == 1 and [a["kind"] for a in d["applied"]] == ["mute"]
    assert out["item"]["status"] == "decided"
    assert len(await rows(Decision, item_id=uuid.UUID(case["id"]))) == 1
    assert len(await rows(Strike, decision_id=uuid.UUID(d["id"]))) == 1
    assert len(await rows(Restriction, item_id=uuid.UUID(case["id"]))) == 1  # enforced once, not 12 times
    assert case["id"] not in {i["id"] for i in await queue(client, mod.headers)}
    # Every slice of the decided case leaves legal hold; the open cases' slices stay held.
    assert await held([*slide, paid, others]) == {str(paid), str(others)}

    student = await login(client, await user_of(talker))
    [statement] = (await client.get("/api/v1/me/decisions", headers=student.headers)).json()
    assert [(e["quote"], e["occurrences"]) for e in statement["evidence"]] == [("[li.wei.tutor@gmail.com]", 12)]

    # The slide is still up after the decision: a new case, which grows on its own.
    again = [(await flag_slice(room, SLIDE, user_id=talker, source="screen", media=NOT_DECODED))[0]
             for _ in range(2)]
    fresh = await item_of_slice(client, mod, again[0])
    assert fresh["id"] != case["id"] and fresh["status"] == "new"
    assert fresh["slice_count"] == 2 and fresh["slice_id"] == str(again[0])
    old = (await client.get(f"/api/v1/moderation/items/{case['id']}", headers=mod.headers)).json()
    assert old["status"] == "decided" and old["flag_count"] == 12


async def test_critical_hits_across_slices_restrict_once(client: httpx.AsyncClient) -> None:
    room = await live_room()
    talker = room.speakers[-1]
    await join(room, talker)
    threat = FlagSpec(category="abuse", rule_id="abuse.threat", severity="critical", quote="[I will hurt you]",
                      auto_action="mute")
    sids = [(await flag_slice(room, threat, user_id=talker, media=NOT_DECODED))[0] for _ in range(3)]
    mod = await logged_in(client, "moderator")
    case = await item_of_slice(client, mod, sids[-1])
    assert case["slice_count"] == 3 and case["auto_restricted"]
    automated = await rows(Decision, item_id=uuid.UUID(case["id"]), outcome="restrict")
    assert len(automated) == 1
    assert [r.kind for r in await rows(Restriction, item_id=uuid.UUID(case["id"]))] == ["mute"]


async def test_an_escalated_case_keeps_gathering_and_hits_are_placed_once(client: httpx.AsyncClient) -> None:
    room = await live_room()
    first, _ = await flag_slice(room, media=NOT_DECODED)
    mod = await logged_in(client, "moderator")
    case = await item_of_slice(client, mod, first)
    await claim(client, mod, case["id"])
    await decide(client, mod, case["id"], decision(outcome="escalate", reason="needs an admin's look"))
    later, flag_ids = await flag_slice(room, media=NOT_DECODED)
    assert (await item_of_slice(client, mod, later))["id"] == case["id"]  # not decided yet: same case

    # A re-run of the pipeline announces the same flags again: nothing is placed twice.
    async with unit_of_work(get_runtime().sessionmaker) as s:
        await announce_flags_stored(s, later, flag_ids)
    [item] = await rows(ReviewItem, id=uuid.UUID(case["id"]))
    assert item.flag_count == 2 and item.slice_count == 2 and item.status == "escalated"


def _policy(version: str, live_action: str) -> dict[str, Any]:
    return {"version": version, "rules": [
        {"id": "contact.phone", "version": 1, "category": "off_platform_contact", "severity": "high",
         "type": "keywords", "params": {"keywords": ["call me"]}, "live_action": live_action}]}


async def test_the_policy_says_what_a_hit_does_live(client: httpx.AsyncClient) -> None:
    admin = await logged_in(client, "admin")
    room = await live_room(students=2)
    restricted, silent = room.speakers[1], room.speakers[2]
    await join(room, restricted)
    await join(room, silent)
    mod = await logged_in(client, "moderator")

    r = await client.put("/api/v1/moderation/policy", json=_policy("t-live-1", "nudge_restrict"),
                         headers=admin.headers)
    assert r.status_code == 201, r.text
    sid, _ = await flag_slice(room, user_id=restricted, media=NOT_DECODED)
    case = await item_of_slice(client, mod, sid)
    assert case["auto_restricted"]
    detail = (await client.get(f"/api/v1/moderation/items/{case['id']}", headers=mod.headers)).json()
    assert [r["kind"] for r in detail["restrictions"]] == ["mute"]
    kinds = [t["kind"] for t in detail["timeline"]]
    assert kinds.index("live_nudge") < kinds.index("restriction_applied")

    r = await client.put("/api/v1/moderation/policy", json=_policy("t-live-2", "off"), headers=admin.headers)
    assert r.status_code == 201, r.text
    sid2, _ = await flag_slice(room, user_id=silent, media=NOT_DECODED)
    case2 = await item_of_slice(client, mod, sid2)
    detail = (await client.get(f"/api/v1/moderation/items/{case2['id']}", headers=mod.headers)).json()
    assert [t["kind"] for t in detail["timeline"]] == ["flag"] and detail["restrictions"] == []
