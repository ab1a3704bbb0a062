"""Which relay node hosts a live session's room, and which nodes are alive.

Embedded mode has one node: every room is local (``LocalPlacement``). In the scale-out mode
many relay nodes share Redis (as LiveKit does): each node refreshes a heartbeat key with a TTL
and its room count; a room is placed once, atomically, on the least-loaded live node and stays
there while that node lives; if the node dies (its heartbeat expires) the next join re-places
the room on a live node. The HTTP join answer then names the owning node's signaling URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from classguard.settings import Settings

log = logging.getLogger("classguard.placement")

NODE_PREFIX = "cg:relay:node:"
ROOM_PREFIX = "cg:relay:room:"

# KEYS: none. ARGV: room key, node prefix, this node id, room ttl seconds.
# Returns the owning node id: the current owner if its heartbeat is alive, else the live node
# with the fewest rooms (ties: this node), recorded with the room's TTL. Atomic in Redis.
_PLACE = """
local owner = redis.call('GET', ARGV[1])
if owner and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
  redis.call('EXPIRE', ARGV[1], ARGV[4])
  return owner
end
local best = ARGV[3]
local best_load = tonumber(redis.call('HGET', ARGV[2] .. ARGV[3], 'rooms') or '0')
local cursor = '0'
repeat
  local res = redis.call('SCAN', cursor, 'MATCH', ARGV[2] .. '*', 'COUNT', 100)
  cursor = res[1]
  for _, key in ipairs(res[2]) do
    local load = tonumber(redis.call('HGET', key, 'rooms') or '0')
    if load < best_load then
      best = string.sub(key, string.len(ARGV[2]) + 1)
      best_load = load
    end
  end
until cursor == '0'
redis.call('SET', ARGV[1], best, 'EX', ARGV[4])
return best
"""


@dataclass(frozen=True)
class Node:
    id: str
    public_url: str  # base URL clients use to reach this node ("" = same origin)


class Placement(Protocol):
    node: Node

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def place(self, room_id: uuid.UUID) -> Node: ...
    async def release(self, room_id: uuid.UUID) -> None: ...


class LocalPlacement:
    """One node: every room is here."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def place(self, room_id: uuid.UUID) -> Node:
        return self.node

    async def release(self, room_id: uuid.UUID) -> None:
        return None


class RedisPlacement:
    """Room placement and node liveness shared by every relay node through Redis."""

    def __init__(self, redis_url: str, node: Node, *, load: Callable[[], int] = lambda: 0,
                 heartbeat_seconds: float = 3.0, node_ttl_seconds: int = 10,
                 room_ttl_seconds: int = 6 * 3600) -> None:
        """``load`` tells how many rooms this node holds now (published with each heartbeat)."""
        import redis.asyncio as aioredis

        self.node = node
        self._load = load
        self._redis = aioredis.from_url(redis_url, decode_responses=True)
        self._heartbeat = heartbeat_seconds
        self._node_ttl = node_ttl_seconds
        self._room_ttl = room_ttl_seconds
        self._task: asyncio.Task[None] | None = None
        self._script = self._redis.register_script(_PLACE)

    async def start(self) -> None:
        await self._beat()
        self._task = asyncio.create_task(self._loop(), name="relay-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._redis.delete(NODE_PREFIX + self.node.id)
        await self._redis.aclose()

    async def _beat(self) -> None:
        key = NODE_PREFIX + self.node.id
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"rooms": self._load(), "url": self.node.public_url})
            pipe.expire(key, self._node_ttl)
            await pipe.execute()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._beat()
            except Exception:  # Redis down: keep trying; rooms here keep running meanwhile
                log.warning("relay heartbeat to Redis failed", exc_info=True)

    async def place(self, room_id: uuid.UUID) -> Node:
        await self._beat()  # publish the current load before comparing loads
        owner = await self._script(args=[ROOM_PREFIX + str(room_id), NODE_PREFIX, self.node.id, self._room_ttl])
        if owner == self.node.id:
            return self.node
        url = await self._redis.hget(NODE_PREFIX + owner, "url")
        return Node(id=str(owner), public_url=str(url or ""))

    async def release(self, room_id: uuid.UUID) -> None:
        # Only the owner releases; a stale node must not drop a room re-placed elsewhere.
        key = ROOM_PREFIX + str(room_id)
        if await self._redis.get(key) == self.node.id:
            await self._redis.delete(key)


def make_placement(settings: Settings, load: Callable[[], int]) -> LocalPlacement | RedisPlacement:
    """The placement the settings ask for (``relay_placement``: local or redis)."""
    node = Node(settings.relay_node_id, settings.relay_public_url)
    if settings.relay_placement == "redis":
        return RedisPlacement(settings.redis_url, node, load=load)
    return LocalPlacement(node)
