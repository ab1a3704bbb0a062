"""Relay placement over the real Redis: one owner per room, least-loaded node, failover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from classroom.placement import NODE_PREFIX, ROOM_PREFIX, Node, RedisPlacement
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis


@pytest.fixture
async def clean_redis() -> AsyncIterator[None]:
    r = aioredis.from_url(REDIS_URL)
    for prefix in (NODE_PREFIX, ROOM_PREFIX):
        async for key in r.scan_iter(match=prefix + "*"):
            await r.delete(key)
    yield
    await r.aclose()


async def _node(name: str, rooms: int = 0, ttl: int = 10) -> RedisPlacement:
    p = RedisPlacement(REDIS_URL, Node(name, f"https://{name}.example"), heartbeat_seconds=0.2,
                       node_ttl_seconds=ttl)
    p.set_room_count(rooms)
    await p.start()
    return p


async def test_concurrent_joins_agree_on_one_least_loaded_owner(clean_redis: None) -> None:
    busy, idle = await _node("busy", rooms=5), await _node("idle", rooms=1)
    try:
        room = uuid.uuid4()
        owners = await asyncio.gather(*[p.place(room) for p in (busy, idle) for _ in range(10)])
        assert {o.id for o in owners} == {"idle"}
        assert {o.public_url for o in owners} == {"https://idle.example"}
        # only the owner may release
        await busy.release(room)
        assert (await busy.place(room)).id == "idle"
        await idle.release(room)
        busy.set_room_count(0)
        await asyncio.sleep(0.5)  # the next heartbeat publishes the lighter load
        assert (await idle.place(room)).id == "busy"
    finally:
        await busy.stop()
        await idle.stop()


async def test_room_moves_when_its_node_dies(clean_redis: None) -> None:
    a, b = await _node("a", rooms=0, ttl=1), await _node("b", rooms=3, ttl=1)
    try:
        room = uuid.uuid4()
        assert (await b.place(room)).id == "a"
        await a.stop()  # a dies: its heartbeat key is gone
        assert (await b.place(room)).id == "b"
    finally:
        await b.stop()
