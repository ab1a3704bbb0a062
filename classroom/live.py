"""The classroom's handle on the running relay: find it, ask it, and act on it with attribution.

The relay reports every effective on/off through ``on_source_changed(..., by)`` but knows no
user ids or reasons. When a moderator or the teacher acts, we note who and why for the
(room, participant) first, so the recording event the callback writes names them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage.runtime import Runtime, get_runtime

if TYPE_CHECKING:
    from classroom.placement import Node
    from classroom.relay import Relay

ATTRIBUTION_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class Attribution:
    by_user_id: uuid.UUID | None
    reason: str | None
    at: float


_attributions: dict[tuple[uuid.UUID, uuid.UUID], Attribution] = {}


def relay_of(rt: Runtime | None = None) -> Relay | None:
    """The relay of this process, if it runs here (it is absent in CLI tools and some tests)."""
    try:
        rt = rt or get_runtime()
    except RuntimeError:
        return None
    relay: Relay | None = rt.extras.get("relay")
    return relay


def is_connected(room_id: uuid.UUID, participant_id: uuid.UUID, rt: Runtime | None = None) -> bool:
    relay = relay_of(rt)
    if relay is None:
        return False
    room = relay.rooms.get(room_id)
    return room is not None and participant_id in room.participants


def room_is_open(room_id: uuid.UUID, rt: Runtime | None = None) -> bool:
    relay = relay_of(rt)
    return relay is not None and room_id in relay.rooms


def participants_state(room_id: uuid.UUID, rt: Runtime | None = None) -> list[dict[str, Any]]:
    relay = relay_of(rt)
    return relay.participants(room_id) if relay is not None else []


def attribute(room_id: uuid.UUID, participant_id: uuid.UUID, by_user_id: uuid.UUID | None,
              reason: str | None) -> None:
    """Remember who is about to act on this participant (read back by the callback)."""
    _attributions[(room_id, participant_id)] = Attribution(by_user_id, reason, time.monotonic())


def attribution_for(room_id: uuid.UUID, participant_id: uuid.UUID) -> Attribution | None:
    found = _attributions.get((room_id, participant_id))
    if found is None or time.monotonic() - found.at > ATTRIBUTION_TTL_SECONDS:
        return None
    return found


async def mute(room_id: uuid.UUID, participant_id: uuid.UUID, source: str, muted: bool,
               by_user_id: uuid.UUID | None, reason: str | None) -> None:
    relay = relay_of()
    if relay is None or not is_connected(room_id, participant_id):
        return
    attribute(room_id, participant_id, by_user_id, reason)
    if muted:
        await relay.mute(room_id, participant_id, source, by="moderator")
    else:
        await relay.unmute(room_id, participant_id, source, by="moderator")


async def remove(room_id: uuid.UUID, participant_id: uuid.UUID, by_user_id: uuid.UUID | None,
                 reason: str | None) -> None:
    relay = relay_of()
    if relay is None or not is_connected(room_id, participant_id):
        return
    attribute(room_id, participant_id, by_user_id, reason)
    await relay.remove(room_id, participant_id, reason="removed")


async def notify(room_id: uuid.UUID, participant_id: uuid.UUID, message: dict[str, Any]) -> None:
    """Send a notice to one participant (and "notice_shown" to the room's teachers).

    Like ``mute``, this reaches only a room hosted by this process's relay; in scale-out a
    notice decided on another node is stored (control log) but not shown live.
    """
    relay = relay_of()
    if relay is None or not is_connected(room_id, participant_id):
        return
    await relay.notify(room_id, participant_id, message)


async def end_room(room_id: uuid.UUID, by_user_id: uuid.UUID | None, reason: str | None) -> None:
    relay = relay_of()
    if relay is None or room_id not in relay.rooms:
        return
    for participant_id in list(relay.rooms[room_id].participants):
        attribute(room_id, participant_id, by_user_id, reason)
    await relay.end_room(room_id)


def process_stats(rt: Runtime | None = None) -> dict[str, Any]:
    """CPU seconds, resident memory and threads of this process, plus the relay's room counts.

    Read from /proc (Linux), falling back to ``os.times``/``resource`` elsewhere.
    """
    import os
    import resource
    import threading

    times = os.times()
    cpu = times.user + times.system
    rss = 0
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    relay = relay_of(rt)
    rooms = relay.rooms if relay is not None else {}
    return {
        "pid": os.getpid(), "cpu_seconds": round(cpu, 3), "rss_bytes": rss, "threads": threading.active_count(),
        "rooms": len(rooms), "participants": sum(len(r.participants) for r in rooms.values()),
        "relay": {"running": relay is not None},
    }


async def host_of(rt: Runtime, room_id: uuid.UUID) -> Node:
    """The relay node hosting a live session (placed on first ask; always this node when embedded)."""
    from classroom.placement import LocalPlacement, Node

    placement = rt.extras.get("placement")
    if placement is None:  # no relay lifecycle in this process (CLI tools, some tests)
        placement = LocalPlacement(Node(rt.settings.relay_node_id, rt.settings.relay_public_url))
    node: Node = await placement.place(room_id)
    return node


def is_this_node(rt: Runtime, node: Node) -> bool:
    return node.id == rt.settings.relay_node_id
