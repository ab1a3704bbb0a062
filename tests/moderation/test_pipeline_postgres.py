"""The pipeline on PostgreSQL (the scale-out database): row locks instead of SQLite's database lock,
``ON CONFLICT DO NOTHING`` on the flag key, the carry across a speaker's slices, bad media."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select, update

from classroom.models import Slice
from moderation.models import Flag, StageRun
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation.slice_factory import add_raw_slice, add_slice, live_room
from tests.moderation.test_pipeline import PHONE_TALK, analysis, drain, webm

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


async def test_pipeline_on_postgres(pg_client: httpx.AsyncClient) -> None:
    room = await live_room()
    first = await add_slice(room, webm(
        "Thanks for the lesson. If you want extra practice you can text me, my number is four one five", pad=0.3))
    second = await add_slice(room, webm("two zero three seven eight six six. See you next week.", pad=0.3))
    whole = await add_slice(room, webm(PHONE_TALK), user_id=room.speakers[1])
    broken = await add_raw_slice(room, b"not media at all " * 10, user_id=room.speakers[1])
    await drain()
    admin = await logged_in(pg_client, "admin")

    a, b, w = [await analysis(pg_client, admin, s) for s in (first, second, whole)]
    assert [x["slice"]["status"] for x in (a, b, w)] == ["done", "done", "done"]
    assert not any(f["rule_id"] == "contact.phone" for f in a["flags"])
    assert [f["evidence"]["continues_previous_slice"] for f in b["flags"] if f["rule_id"] == "contact.phone"] == [True]
    assert any(f["rule_id"] == "contact.phone" for f in w["flags"])
    failed = (await pg_client.get("/api/v1/moderation/slices/failed", headers=admin.headers)).json()
    assert [(f["id"], f["error"].split(":")[0]) for f in failed] == [(str(broken), "media")]

    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as s:
        before = await s.scalar(select(func.count()).select_from(Flag))
        await s.execute(update(StageRun).where(StageRun.slice_id == whole).values(status="pending"))
        await s.execute(update(Slice).where(Slice.id == whole).values(status="processing"))
    for name in ("moderation.media", "moderation.media", "moderation.asr", "moderation.rules", "moderation.rules"):
        await rt.dispatcher.submit(name, {"slice_id": str(whole)})
    await drain()
    async with unit_of_work(rt.sessionmaker) as s:
        assert await s.scalar(select(func.count()).select_from(Flag)) == before
        assert await s.scalar(select(Slice.status).where(Slice.id == whole)) == "done"
