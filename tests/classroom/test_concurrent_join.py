"""Two people joining an idle class at the same instant join the same new live session: the
one-live-session index lets one insert win and the other request reads the winner's session."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from classroom.models import LiveSession
from storage.runtime import get_runtime
from tests.classroom.class_factories import make_class

JOINERS = 8


async def _all_join_at_once(client: httpx.AsyncClient, rounds: int = 3) -> None:
    setup = await make_class(client, students=JOINERS - 1)
    people = [setup.teacher, *setup.students]
    for _ in range(rounds):  # each round: the class is idle, everyone joins at once
        responses = await asyncio.gather(*(client.post(f"/api/v1/classes/{setup.id}/join", headers=u.headers)
                                           for u in people))
        assert [r.status_code for r in responses] == [200] * len(people), [r.text for r in responses]
        ids = {r.json()["session"]["id"] for r in responses}
        assert len(ids) == 1, ids
        async with get_runtime().sessionmaker() as s:
            live = await s.scalar(select(func.count()).select_from(LiveSession).where(
                LiveSession.class_id == uuid.UUID(setup.id), LiveSession.status == "live"))
        assert live == 1
        r = await client.post(f"/api/v1/sessions/{ids.pop()}/end", headers=setup.teacher.headers)
        assert r.status_code == 200, r.text


@pytest.mark.postgres
async def test_concurrent_first_joins_share_one_session_on_postgres(pg_client: httpx.AsyncClient) -> None:
    await _all_join_at_once(pg_client)


async def test_concurrent_first_joins_share_one_session_on_sqlite(client: httpx.AsyncClient) -> None:
    await _all_join_at_once(client)
