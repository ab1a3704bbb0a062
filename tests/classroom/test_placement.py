"""Relay placement over the real Redis: one owner per room, least-loaded node, failover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

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


LOADS: dict[str, int] = {}


async def _node(name: str, rooms: int = 0, ttl: int = 10) -> RedisPlacement:
    LOADS[name] = rooms
    p = RedisPlacement(REDIS_URL, Node(name, f"https://{name}.example"), load=lambda: LOADS[name],
                       heartbeat_seconds=0.2, node_ttl_seconds=ttl)
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
        LOADS["busy"] = 0
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


@pytest.mark.postgres
@pytest.mark.slow
async def test_two_relay_nodes_send_a_session_to_its_host(clean_redis: None, pg_settings: object,
                                                          tmp_path: Path) -> None:
    """Two `classguard serve` nodes on one PostgreSQL and one Redis: the live session is placed on
    one node; joining through the other names the host's URL, and its socket refuses with 409."""
    import json as jsonlib

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    from classguard.settings import Settings
    from tests.classroom.live_server import scale_out_nodes

    assert isinstance(pg_settings, Settings)
    a, b = scale_out_nodes(tmp_path, pg_settings.database_url)
    a.start()
    b.start()
    try:
        teacher = a.register("t@example.com", "teacher")
        student = a.register("s@example.com", "student")
        class_id = a.make_class(teacher, [student])
        via_a = a.post(f"/api/v1/classes/{class_id}/join", teacher)
        assert via_a["relay_node"] == "node-a"
        sid = via_a["session"]["id"]
        via_b = b.post(f"/api/v1/classes/{class_id}/join", b.login("s@example.com"))
        assert via_b["relay_node"] == "node-a"
        assert via_b["signal_url"].startswith(f"{a.base}/api/v1/sessions/{sid}/signal?ticket=")

        with pytest.raises(InvalidStatus) as refused:
            async with connect(b.ws_url(sid, student)):
                pass
        assert refused.value.response.status_code == 409
        assert "node-a" in jsonlib.loads(refused.value.response.body or b"{}")["detail"]
        async with connect(a.ws_url(sid, student)) as ws:
            assert jsonlib.loads(await ws.recv())["type"] == "welcome"
    finally:
        a.stop()
        b.stop()
