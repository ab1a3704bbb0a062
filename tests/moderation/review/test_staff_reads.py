"""Every staff read of personal data in review is access-logged (privacy promise 3): besides the
transcript, the participant's history (quotes from other slices, other decisions' notes) and the
appeal texts shown with an item, an appeal read on its own, and an item's event log. The person
sees each read in their own ``/me/access-log``."""

from __future__ import annotations

from collections import Counter

import httpx

from tests.factories import TestUser, logged_in, login
from tests.moderation.review.factory import FlagSpec, claim, decide, decision, flag_slice, item_of_slice, live_room
from tests.moderation.review.test_appeals import user_of


async def _reads_about(client: httpx.AsyncClient, person: TestUser) -> Counter[str]:
    r = await client.get("/api/v1/me/access-log", headers=person.headers)
    assert r.status_code == 200, r.text
    return Counter(e["resource_type"] for e in r.json() if e["actor_role"] in ("moderator", "admin"))


async def test_item_detail_logs_history_and_appeal_texts(client: httpx.AsyncClient) -> None:
    room = await live_room()
    first_slice, _ = await flag_slice(room)
    student = await login(client, await user_of(room.speakers[-1]))
    first = await logged_in(client, "moderator")
    second = await logged_in(client, "moderator")
    earlier = await item_of_slice(client, first, first_slice)
    await claim(client, first, earlier["id"])
    d = (await decide(client, first, earlier["id"], decision(action="warn")))["decision"]
    r = await client.post("/api/v1/appeals", headers=student.headers,
                          json={"decision_id": d["id"], "text": "I was reading the school's number aloud."})
    assert r.status_code == 201, r.text
    appeal_id = r.json()["id"]
    before = await _reads_about(client, student)

    # A new item about the same student: its detail quotes the earlier slice and shows the appeal.
    later_slice, _ = await flag_slice(room, FlagSpec(quote="add me on [WeChat]", rule_id="contact.wechat"))
    later = await item_of_slice(client, second, later_slice)
    r = await client.get(f"/api/v1/moderation/items/{later['id']}", headers=second.headers)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["history"]["items"][0]["quotes"] == ["my number is [5551234567]"]
    assert detail["history"]["decisions"][0]["appeal"]["text"].startswith("I was reading")
    after = await _reads_about(client, student)
    assert after - before == Counter({"transcript": 1, "moderation_history": 1, "appeal": 1})

    # the appeal read on its own, and the earlier item's event log (moderators' reasons)
    r = await client.get(f"/api/v1/appeals/{appeal_id}", headers=second.headers)
    assert r.status_code == 200 and r.json()["text"].startswith("I was reading")
    r = await client.get(f"/api/v1/moderation/items/{earlier['id']}/events", headers=second.headers)
    assert r.status_code == 200
    assert await _reads_about(client, student) - after == Counter({"appeal": 1, "moderation_events": 1})
    # the author reading their own appeal is not a staff read
    assert (await client.get(f"/api/v1/appeals/{appeal_id}", headers=student.headers)).status_code == 200
    assert await _reads_about(client, student) - after == Counter({"appeal": 1, "moderation_events": 1})
