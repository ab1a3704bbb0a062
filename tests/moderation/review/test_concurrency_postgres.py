"""On PostgreSQL, concurrent moderators never get the same item: claim-next uses FOR UPDATE
SKIP LOCKED, a direct claim and a decision are single compare-and-set UPDATEs."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from moderation.review.models import CaseFlag, Decision, ReviewItem, Strike
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation.review.factory import decision, flag_slice, live_room

pytestmark = pytest.mark.postgres


async def test_twenty_concurrent_claimers_never_share_an_item(pg_client: httpx.AsyncClient) -> None:
    room = await live_room(students=30)
    for student in room.speakers[1:]:  # one case each: a participant's flags of a category are one case
        await flag_slice(room, user_id=student, media=b"\x1aE\xdf\xa3 not decoded in this test")
    mods = [await logged_in(pg_client, "moderator") for _ in range(20)]

    async def claim_next(headers: dict[str, str]) -> str | None:
        r = await pg_client.post("/api/v1/moderation/queue/claim-next", headers=headers)
        assert r.status_code == 200, r.text
        item = r.json()["item"]
        return item["id"] if item else None

    for _round in range(2):  # 20 claims, then 10 left for 20 claimers
        got = await asyncio.gather(*(claim_next(m.headers) for m in mods))
        held = [g for g in got if g]
        assert len(held) == len(set(held)), Counter(held).most_common(3)
        if _round == 0:
            assert len(held) == 20
            first_round = set(held)
        else:
            assert len(held) == 10 and not (set(held) & first_round)

    # 20 moderators race for the same (released) item: exactly one wins.
    target = sorted(first_round)[0]
    holder = (await pg_client.get(f"/api/v1/moderation/items/{target}", headers=mods[0].headers)).json()
    owner = next(m for m in mods if m.id == holder["claimed_by"])
    r = await pg_client.post(f"/api/v1/moderation/items/{target}/release", headers=owner.headers)
    assert r.status_code == 200
    codes = await asyncio.gather(*(pg_client.post(f"/api/v1/moderation/items/{target}/claim", headers=m.headers)
                                   for m in mods))
    statuses = Counter(c.status_code for c in codes)
    assert statuses[200] == 1 and statuses[409] == 19, statuses

    # The winner sends the same decision five times at once: one decision, one strike.
    winner = mods[[c.status_code for c in codes].index(200)]
    body = decision(action="warn")
    answers = await asyncio.gather(*(pg_client.post(f"/api/v1/moderation/items/{target}/decision", json=body,
                                                    headers=winner.headers) for _ in range(5)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert len({a.json()["decision"]["id"] for a in answers}) == 1
    assert sum(1 for a in answers if not a.json()["replayed"]) == 1
    async with unit_of_work(get_runtime().sessionmaker) as s:
        n_decisions = await s.scalar(select(func.count()).select_from(Decision)
                                     .where(Decision.item_id == uuid.UUID(target)))
        n_strikes = await s.scalar(select(func.count()).select_from(Strike))
    assert (n_decisions, n_strikes) == (1, 1)


async def test_slices_closing_at_once_join_one_case(pg_client: httpx.AsyncClient) -> None:
    """Eight slices of one participant flagged in eight concurrent transactions: the partial
    unique index lets only one open the case; the others lose the race in a savepoint and join it."""
    room = await live_room()
    talker = room.speakers[-1]
    await asyncio.gather(*(flag_slice(room, user_id=talker, media=b"\x1aE\xdf\xa3 not decoded in this test")
                           for _ in range(8)))
    async with unit_of_work(get_runtime().sessionmaker) as s:
        items = (await s.scalars(select(ReviewItem).where(ReviewItem.user_id == talker))).all()
        placed = (await s.execute(select(func.count()).select_from(CaseFlag))).scalar_one()
    assert [(i.flag_count, i.slice_count) for i in items] == [(8, 8)]
    assert placed == 8
