"""One control path for live connections, wherever they run.

Every control that must reach an open signaling connection — today "disconnect" (a sanction, a
sign-out, later a withdrawn consent) — is a ``ControlMessage``: a kind, and a target (a user, one
login token, optionally one live session). ``control_of(rt).send(message)`` delivers it:

* embedded mode (``relay_placement=local``): applied in-process on this node's relay;
* scale-out (``relay_placement=redis``): published to the Redis channel
  ``cg:live:control:<node_id>`` of every live relay node (or only of the room's host when the
  message names a live session); each node subscribes to its own channel and applies what
  arrives on its relay. A process without a relay (a worker, a CLI tool) only publishes.

Applying happens on the node that holds the connection, through ``LiveControl.apply`` and the
handler registered for the message kind (``register_handler``), so mute/end can join later.

Every connection of this node is registered (``admit``) with the user, the login token behind it
and the moment its authorisation was read. A disconnect that arrives while a connection is being
authorised is remembered for a while: a connection whose authorisation was read before it is
refused (the database it read may predate the sanction), so none slips through the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storage.errors import NotFound
from storage.runtime import Runtime

if TYPE_CHECKING:
    from classroom.relay import Relay

log = logging.getLogger("classguard.live_control")

CHANNEL_PREFIX = "cg:live:control:"
REVOCATION_MEMORY_SECONDS = 300.0  # longer than any authorisation takes (join tickets live 60 s)

DISCONNECT = "disconnect"


@dataclass(frozen=True)
class ControlMessage:
    """A control for live connections. ``reason`` is what the participant is told ("removed"
    reason) and what the recording trail says; ``data`` carries a kind's own fields."""

    kind: str
    reason: str
    user_id: uuid.UUID | None = None
    auth_session_id: uuid.UUID | None = None  # one login token
    live_session_id: uuid.UUID | None = None  # one live class; None: every class
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "kind": self.kind, "reason": self.reason, "data": self.data,
            **{k: str(v) for k, v in (("user_id", self.user_id), ("auth_session_id", self.auth_session_id),
                                      ("live_session_id", self.live_session_id)) if v is not None},
        })

    @classmethod
    def from_json(cls, text: str | bytes) -> ControlMessage:
        raw = json.loads(text)

        def uid(name: str) -> uuid.UUID | None:
            return uuid.UUID(raw[name]) if raw.get(name) else None

        return cls(kind=str(raw["kind"]), reason=str(raw.get("reason", "")), user_id=uid("user_id"),
                   auth_session_id=uid("auth_session_id"), live_session_id=uid("live_session_id"),
                   data=dict(raw.get("data") or {}))

    def matches(self, conn: Connection) -> bool:
        if self.user_id is None and self.auth_session_id is None and self.live_session_id is None:
            return False  # a control with no target reaches nobody (never everybody)
        return ((self.user_id is None or conn.user_id == self.user_id)
                and (self.auth_session_id is None or conn.auth_session_id == self.auth_session_id)
                and (self.live_session_id is None or conn.live_session_id == self.live_session_id))


@dataclass(eq=False)
class Connection:
    """One open signaling connection on this node."""

    live_session_id: uuid.UUID
    user_id: uuid.UUID
    auth_session_id: uuid.UUID | None
    authorized_at: float = field(default_factory=time.monotonic)  # when its authorisation was read
    ended_reason: str | None = None  # set when a control closed it (the stay's left_reason)


Handler = Callable[["LiveControl", ControlMessage], Awaitable[None]]
_handlers: dict[str, Handler] = {}


def register_handler(kind: str, handler: Handler) -> None:
    """Say how a message kind is applied on the node that holds the connection."""
    _handlers[kind] = handler


class LiveControl:
    """This node's connections and the in-process delivery (embedded mode)."""

    def __init__(self, relay: Relay | None) -> None:
        self.relay = relay
        self.connections: dict[tuple[uuid.UUID, uuid.UUID], Connection] = {}
        self._revoked: list[tuple[ControlMessage, float]] = []

    # --- delivery -------------------------------------------------------------------------

    async def send(self, message: ControlMessage) -> None:
        """Deliver to wherever the targeted connections are (here: this process)."""
        await self.apply(message)

    async def apply(self, message: ControlMessage) -> None:
        """Act on this node's connections (called by ``send`` or the node's subscription)."""
        handler = _handlers.get(message.kind)
        if handler is None:
            log.warning("unknown live control %r ignored", message.kind)
            return
        await handler(self, message)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    # --- connections of this node -----------------------------------------------------------

    def admit(self, conn: Connection) -> bool:
        """Register a connection; False if a disconnect aimed at it arrived after its
        authorisation was read (then it must be refused)."""
        now = time.monotonic()
        self._revoked = [(m, at) for m, at in self._revoked if now - at < REVOCATION_MEMORY_SECONDS]
        if any(m.matches(conn) and at >= conn.authorized_at for m, at in self._revoked):
            return False
        self.connections[(conn.live_session_id, conn.user_id)] = conn
        return True

    def release(self, conn: Connection) -> None:
        """Forget a connection that ended (unless a newer one of the same user took its place)."""
        key = (conn.live_session_id, conn.user_id)
        if self.connections.get(key) is conn:
            del self.connections[key]

    def matching(self, message: ControlMessage) -> list[Connection]:
        return [c for c in self.connections.values() if message.matches(c)]

    def remember_revocation(self, message: ControlMessage) -> None:
        self._revoked.append((message, time.monotonic()))


class RedisLiveControl(LiveControl):
    """Scale-out delivery: one Redis channel per relay node (``cg:live:control:<node_id>``)."""

    def __init__(self, redis_url: str, node_id: str, relay: Relay | None) -> None:
        import redis.asyncio as aioredis

        super().__init__(relay)
        self.node_id = node_id
        self._redis = aioredis.from_url(redis_url, decode_responses=True)
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def channel(self) -> str:
        return CHANNEL_PREFIX + self.node_id

    async def start(self) -> None:
        if self.relay is None:
            return  # a publisher only: no connections live here
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._task = asyncio.create_task(self._listen(), name="live-control-subscriber")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self._redis.aclose()

    async def send(self, message: ControlMessage) -> None:
        text = message.to_json()
        for node in await self._targets(message):
            await self._redis.publish(CHANNEL_PREFIX + node, text)

    async def _targets(self, message: ControlMessage) -> set[str]:
        from classroom.placement import NODE_PREFIX, ROOM_PREFIX

        if message.live_session_id is not None:
            owner = await self._redis.get(ROOM_PREFIX + str(message.live_session_id))
            if owner:
                return {str(owner)}
        # a user's connections may be on any node: every live one gets it
        nodes = {str(key)[len(NODE_PREFIX):] async for key in self._redis.scan_iter(match=NODE_PREFIX + "*")}
        if self.relay is not None:
            nodes.add(self.node_id)
        return nodes

    async def _listen(self) -> None:
        while True:
            try:
                async for item in self._pubsub.listen():
                    if item.get("type") != "message":
                        continue
                    try:
                        message = ControlMessage.from_json(item["data"])
                    except (ValueError, KeyError, TypeError):
                        log.warning("malformed live control on %s ignored", self.channel)
                        continue
                    task = asyncio.ensure_future(self._apply_logged(message))
                    task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: resubscribe; connections here keep running
                log.warning("live control subscription on %s failed; retrying", self.channel, exc_info=True)
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await self._pubsub.subscribe(self.channel)

    async def _apply_logged(self, message: ControlMessage) -> None:
        try:
            await self.apply(message)
        except Exception:
            log.exception("live control %s failed", message.kind)


def make_control(rt: Runtime, relay: Relay | None) -> LiveControl:
    s = rt.settings
    if s.relay_placement == "redis":
        return RedisLiveControl(s.redis_url, s.relay_node_id, relay)
    return LiveControl(relay)


def control_of(rt: Runtime) -> LiveControl:
    """This process's control path (a publisher-only one where no relay runs, made once)."""
    control: LiveControl | None = rt.extras.get("live_control")
    if control is None:
        control = rt.extras["live_control"] = make_control(rt, None)
    return control


# --- the disconnect control -------------------------------------------------------------------

async def _disconnect(control: LiveControl, message: ControlMessage) -> None:
    """Close every matching connection: the relay stops forwarding their tracks, closes their open
    segments as normal slices (stored and enqueued) and tells the room at once."""
    from classroom import live

    control.remember_revocation(message)
    relay = control.relay
    targets = control.matching(message)
    if relay is None or not targets:
        return

    async def close(conn: Connection) -> None:
        conn.ended_reason = message.reason
        live.attribute(conn.live_session_id, conn.user_id, None, message.data.get("trail_reason") or message.reason)
        try:
            await relay.remove(conn.live_session_id, conn.user_id, reason=message.reason)
        except NotFound:  # they left meanwhile
            return

    await asyncio.gather(*(close(c) for c in targets))


register_handler(DISCONNECT, _disconnect)
