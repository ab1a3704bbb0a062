"""The review queue through the HTTP API: cases of flagged slices, order, filters, leases,
permissions, item detail and the event log."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select, text

from moderation.review.models import ModerationEvent
from storage.access_log.models import AccessLogEntry
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation.review.factory import (
    FlagSpec,
    claim,
    decide,
    decision,
    expire_lease,
    flag_slice,
    item_of_slice,
    live_room,
)


async def events_of(item_id: str) -> list[str]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        rows = (await s.scalars(select(ModerationEvent).where(ModerationEvent.item_id == uuid.UUID(item_id))
                                .order_by(ModerationEvent.seq))).all()
    return [e.kind for e in rows]


async def test_flags_on_one_slice_are_one_item_and_queue_is_ordered_by_severity_then_age(
        client: httpx.AsyncClient) -> None:
    room = await live_room(students=2)
    low, _ = await flag_slice(room, FlagSpec(severity="low", rule_id="abuse.mild", category="abuse"))
    high_old, _ = await flag_slice(room, FlagSpec(), FlagSpec(rule_id="contact.app", start_ms=6000, end_ms=7000,
                                                            quote="[WhatsApp]", severity="medium"))
    high_new, _ = await flag_slice(room, FlagSpec(category="payment_bypass", rule_id="pay.direct"),
                                   user_id=room.speakers[1])
    mod = await logged_in(client, "moderator")

    r = await client.get("/api/v1/moderation/queue", headers=mod.headers)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["slice_id"] for i in items] == [str(high_old), str(high_new), str(low)]
    first = items[0]
    assert first["flag_count"] == 2 and first["severity"] == "high" and first["status"] == "new"
    assert first["categories"] == ["off_platform_contact"]
    assert first["rule_ids"] == ["contact.app", "contact.phone"]
    assert first["participant"]["id"] == str(room.speakers[-1])
    assert first["class_id"] == str(room.class_id)

    async def ids(**params: str) -> list[str]:
        got = await client.get("/api/v1/moderation/queue", params=params, headers=mod.headers)
        assert got.status_code == 200, got.text
        return [i["slice_id"] for i in got.json()["items"]]

    assert await ids(category="payment_bypass") == [str(high_new)]
    assert await ids(rule_id="contact.app") == [str(high_old)]
    assert await ids(rule_id="contact_app") == []  # "_" is not a wildcard
    assert await ids(participant_id=str(room.speakers[1])) == [str(high_new)]
    assert await ids(class_id=str(room.class_id)) == [str(high_old), str(high_new), str(low)]
    assert await ids(class_id=str(uuid.uuid4())) == []
    assert await ids(status="decided") == []
    await claim(client, mod, first["id"])
    assert await ids(status="in_review") == [str(high_old)]
    assert await ids(status="new") == [str(high_new), str(low)]
    page = await client.get("/api/v1/moderation/queue", params={"limit": 2}, headers=mod.headers)
    assert page.json()["next_offset"] == 2
    bad = await client.get("/api/v1/moderation/queue", params={"status": "whatever"}, headers=mod.headers)
    assert bad.status_code == 422 and bad.json()["error"] == "ValidationError"
    assert await events_of(first["id"]) == ["flag_created", "flag_created", "claimed"]


@pytest.mark.parametrize("role", ["student", "teacher"])
async def test_students_and_teachers_get_403_on_moderation(client: httpx.AsyncClient, role: str) -> None:
    room = await live_room()
    await flag_slice(room)
    mod = await logged_in(client, "moderator")
    item = (await client.get("/api/v1/moderation/queue", headers=mod.headers)).json()["items"][0]
    user = await logged_in(client, role)
    for method, url in [
        ("GET", "/api/v1/moderation/queue"),
        ("POST", "/api/v1/moderation/queue/claim-next"),
        ("GET", f"/api/v1/moderation/items/{item['id']}"),
        ("POST", f"/api/v1/moderation/items/{item['id']}/claim"),
        ("POST", f"/api/v1/moderation/items/{item['id']}/decision"),
        ("GET", f"/api/v1/moderation/items/{item['id']}/events"),
    ]:
        r = await client.request(method, url, headers=user.headers,
                                 json={"outcome": "dismiss", "reason": "x" * 5} if method == "POST" else None)
        assert r.status_code == 403, (url, r.text)
        assert r.json()["error"] == "Forbidden"
    client.cookies.clear()  # login set the session cookie too
    anonymous = await client.get("/api/v1/moderation/queue")
    assert anonymous.status_code == 401


async def test_lease_keeps_others_out_until_it_expires(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    a = await logged_in(client, "moderator")
    b = await logged_in(client, "moderator")
    item = await item_of_slice(client, a, sid)

    got = await claim(client, a, item["id"])
    assert got["you_hold_lease"] and got["status"] == "in_review" and got["claimed_by"] == a.id
    taken = await client.post(f"/api/v1/moderation/items/{item['id']}/claim", headers=b.headers)
    assert taken.status_code == 409 and taken.json()["error"] == "Conflict"
    nothing = await client.post("/api/v1/moderation/queue/claim-next", headers=b.headers)
    assert nothing.status_code == 200 and nothing.json()["item"] is None
    renewed = await client.post(f"/api/v1/moderation/items/{item['id']}/renew", headers=a.headers)
    assert renewed.status_code == 200
    not_mine = await client.post(f"/api/v1/moderation/items/{item['id']}/renew", headers=b.headers)
    assert not_mine.status_code == 409

    await expire_lease(item["id"])  # a's lease runs out: the item is back in the queue
    listed = await item_of_slice(client, b, sid)
    assert listed["status"] == "new" and listed["lease_expires_at"] is None
    nxt = await client.post("/api/v1/moderation/queue/claim-next", headers=b.headers)
    assert nxt.json()["item"]["id"] == item["id"] and nxt.json()["item"]["claimed_by"] == b.id
    lost = await client.post(f"/api/v1/moderation/items/{item['id']}/renew", headers=a.headers)
    assert lost.status_code == 409

    released = await client.post(f"/api/v1/moderation/items/{item['id']}/release", headers=b.headers)
    assert released.status_code == 200 and released.json()["status"] == "new"
    again = await client.post(f"/api/v1/moderation/items/{item['id']}/release", headers=b.headers)
    assert again.status_code == 200  # idempotent
    assert await events_of(item["id"]) == ["flag_created", "claimed", "lease_renewed", "lease_expired", "claimed",
                                           "released"]
    r = await client.get(f"/api/v1/moderation/items/{item['id']}/events", headers=a.headers)
    assert [e["kind"] for e in r.json()][-2:] == ["claimed", "released"]
    missing = await client.post(f"/api/v1/moderation/items/{uuid.uuid4()}/claim", headers=a.headers)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"


async def test_claim_next_hands_out_different_items(client: httpx.AsyncClient) -> None:
    room = await live_room(students=3)
    for student in room.speakers[1:]:
        await flag_slice(room, user_id=student)
    mods = [await logged_in(client, "moderator") for _ in range(3)]
    got = []
    for m in mods:
        r = await client.post("/api/v1/moderation/queue/claim-next", headers=m.headers)
        got.append(r.json()["item"]["id"])
    assert len(set(got)) == 3
    fourth = await logged_in(client, "admin")
    r = await client.post("/api/v1/moderation/queue/claim-next", headers=fourth.headers)
    assert r.json()["item"] is None


async def test_item_detail_shows_transcript_hits_screen_box_class_and_history(client: httpx.AsyncClient) -> None:
    room = await live_room()
    student = room.speakers[-1]
    mod = await logged_in(client, "moderator")
    earlier_sid, _ = await flag_slice(room, FlagSpec(severity="low", quote="[telegram]"))
    earlier = await item_of_slice(client, mod, earlier_sid)
    await claim(client, mod, earlier["id"])
    await decide(client, mod, earlier["id"], decision(outcome="dismiss"))
    # After that decision the same participant's next hits gather in a new case: screen, then mic.
    box = [[100.0, 200.0], [700.0, 200.0], [700.0, 240.0], [100.0, 240.0]]
    sid, flag_ids = await flag_slice(
        room, FlagSpec(rule_id="contact.handle", quote="WeChat: [teacher_li]", start_ms=1000, end_ms=1000,
                       evidence={"frame_time": 1.0, "boxes": [box], "value": "teacher_li"}),
        source="screen", ocr=[{"t": 1.0, "text": "WeChat: teacher_li 13812345678", "box": box, "score": 0.99}],
    )
    mic_sid, mic_flags = await flag_slice(room)

    case = await item_of_slice(client, mod, sid)
    assert (await item_of_slice(client, mod, mic_sid))["id"] == case["id"] != earlier["id"]
    assert case["slice_count"] == 2 and case["flag_count"] == 2 and case["slice_id"] == str(sid)
    r = await client.get(f"/api/v1/moderation/items/{case['id']}", headers=mod.headers)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["class"]["id"] == str(room.class_id) and d["class"]["teacher"]["id"] == str(room.teacher_id)
    assert d["class"]["teacher"]["role"] == "teacher"
    assert [s["id"] for s in d["slices"]] == [str(sid), str(mic_sid)]
    assert [(t["kind"], t["slice_id"]) for t in d["timeline"]] == [("flag", str(sid)), ("flag", str(mic_sid))]
    assert d["slice"]["source"] == "screen" and d["slice"]["media_available"]
    assert d["screen"] == [{"flag_id": str(flag_ids[0]), "frame_time": 1.0, "boxes": [box]}]
    assert d["ocr"][0]["text"] == "WeChat: teacher_li 13812345678"
    assert d["you_hold_lease"] is False
    hist = d["history"]
    assert [h["item_id"] for h in hist["items"]] == [earlier["id"]] and hist["active_strikes"] == 0
    assert hist["items"][0]["quotes"] == ["[telegram]"]

    d = (await client.get(f"/api/v1/moderation/items/{case['id']}", params={"slice_id": str(mic_sid)},
                          headers=mod.headers)).json()
    assert d["slice"]["id"] == str(mic_sid) and d["screen"] == []
    hits = [s for s in d["transcript"]["segments"] if s["flag_ids"]]
    assert [s["text"] for s in hits] == ["If you have questions, my number is 5551234567,"]
    assert hits[0]["flag_ids"] == [str(mic_flags[0])]
    assert [f["quote"] for f in d["flags"]] == ["WeChat: [teacher_li]", "my number is [5551234567]"]
    outside = await client.get(f"/api/v1/moderation/items/{case['id']}", params={"slice_id": str(earlier_sid)},
                               headers=mod.headers)
    assert outside.status_code == 404, outside.text

    # Reading the transcript is a staff read of personal data: access log, about the participant.
    async with unit_of_work(get_runtime().sessionmaker) as s:
        rows = (await s.scalars(select(AccessLogEntry).where(AccessLogEntry.resource_type == "transcript"))).all()
    assert {(e.resource_id, e.subject_id, e.actor_id) for e in rows} == {
        (str(s_id), student, uuid.UUID(mod.id)) for s_id in (earlier_sid, sid, mic_sid)}
    assert all(e.reason.startswith("moderation review of flagged item") for e in rows)


async def test_event_log_is_append_only(client: httpx.AsyncClient) -> None:
    room = await live_room()
    await flag_slice(room)
    async with get_runtime().engine.connect() as conn:
        for stmt in ("UPDATE moderation_events SET kind = 'x'", "DELETE FROM moderation_events"):
            with pytest.raises(Exception, match="append-only"):
                await conn.execute(text(stmt))
            await conn.rollback()
        # Unlinking a person (cancellation) is the one change allowed.
        await conn.execute(text("UPDATE moderation_events SET subject_user_id = NULL"))
        await conn.rollback()


@pytest.mark.slow
async def test_the_real_pipeline_fills_the_queue(client: httpx.AsyncClient) -> None:
    """espeak-ng speech with a phone number → classroom slice → media/ASR/rules → flags_stored
    hook → one review item carrying the pipeline's flag."""
    from tests.moderation.slice_factory import add_slice
    from tests.moderation.test_pipeline import PHONE_TALK, drain, webm

    room = await live_room()
    sid = await add_slice(room, webm(PHONE_TALK), user_id=room.speakers[-1])
    await drain()
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    assert "contact.phone" in item["rule_ids"] and item["participant"]["id"] == str(room.speakers[-1])
    detail = await claim(client, mod, item["id"])
    assert any(s["flag_ids"] for s in detail["transcript"]["segments"])
    assert await events_of(item["id"]) == ["flag_created"] * item["flag_count"] + ["claimed"]
