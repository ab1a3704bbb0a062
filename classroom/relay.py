"""The live-media engine: rooms of participants, encoded forwarding, consent-bound recording.

Interface for the classroom domain (which owns the DB, routes and auth)::

    relay = Relay(
        spool_dir=settings.data_dir / "spool",     # segments land here (see classroom.spool)
        ice_servers=settings.ice_servers,           # [{"urls": "turn:…", "username": …, "credential": …}]
        segment_seconds=10.0,                       # rolling segment length
        snapshot_interval=30.0,                     # camera keyframe kept every N s (0: never)
        ice_timeout=20.0,                           # drop a participant whose ICE never completes
        record=True,                                # False: forward only, write nothing
        callbacks=RelayCallbacks(on_segment_closed=…, on_source_changed=…, on_participant_left=…,
                                 load_participant=…),
    )
    recovered = relay.recover()                     # leftover spool files after a crash (call once)
    await relay.connect(room_id, participant_id, display_name, role, channel)
        # runs the signaling loop (classroom.signaling) for that participant until they leave,
        # are removed, the room ends or they reconnect elsewhere; bind ``channel`` with
        # ``signaling.StarletteChannel(websocket)`` in a FastAPI WebSocket route.
    relay.participants(room_id) -> list[dict]       # participant_state dicts (signaling docstring)
    await relay.mute(room_id, participant_id, source="mic", by="moderator")
    await relay.unmute(room_id, participant_id, source="mic", by="moderator")
    await relay.remove(room_id, participant_id)     # closes peers, tells them "removed"
    await relay.end_room(room_id)                   # closes all, "ended", segments closed "ended"
    await relay.close()                             # shutdown: every open segment closed cleanly

Callbacks (all async, all optional; an exception is logged and never loses a spool file):

    on_segment_closed(segment: ClosedSegment) -> None
    on_source_changed(room_id, participant_id, source: "mic"|"camera"|"screen", enabled: bool,
                      at: datetime, by: "participant"|"moderator"|"system") -> None
        # ``enabled`` is the effective state: forwarded (and, for mic/screen, recorded) or not
    on_participant_left(room_id, participant_id) -> None   # after their last segment is announced
    load_participant(room_id, participant_id) -> StoredParticipant
        # what the domain stored about them: sources a moderator muted, and the next free segment
        # number per source (a rejoin continues the numbering). Awaited on every connect, before
        # anything of the participant is forwarded or recorded; if it raises, the connection is
        # refused ("removed", reason "unavailable").

The server decides what is recorded: a mic or screen is written only while (a) the participant
declared it on, (b) its transceiver is negotiated to send, (c) no moderator mute holds, and
(d) packets arrive. Packets outside that gate are dropped before any subscriber or writer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classroom.encoded import check_internals
from classroom.media_peer import PeerSession, SubKey
from classroom.media_source import EncodedSource
from classroom.recorder import (
    ClosedSegment,
    CloseReason,
    SegmentAnnouncer,
    SnapshotRecorder,
    SourceRecorder,
)
from classroom.signaling import (
    SOURCE_KIND,
    SOURCES,
    AnswerMsg,
    Channel,
    ChannelClosed,
    LeaveMsg,
    OfferMsg,
    SignalingError,
    SourceMsg,
    error_message,
    parse_client_message,
)
from classroom.spool import RecoveredSegment, recover_spool
from storage.errors import NotFound

log = logging.getLogger("classguard.relay")

SourceChanged = Callable[[uuid.UUID, uuid.UUID, str, bool, datetime, str], Awaitable[None]]


@dataclass(frozen=True)
class StoredParticipant:
    """What the domain stored about a participant that the relay forgets when they leave."""

    muted: Collection[str] = ()  # sources under a moderator's mute
    next_seq: Mapping[str, int] = field(default_factory=dict)  # "mic"|"screen"|"snapshot" -> first free seq


ParticipantLoader = Callable[[uuid.UUID, uuid.UUID], Awaitable[StoredParticipant]]


@dataclass
class RelayCallbacks:
    """The domain's hooks into the engine (see the module docstring for signatures)."""

    on_segment_closed: Callable[[ClosedSegment], Awaitable[None]] | None = None
    on_source_changed: SourceChanged | None = None
    on_participant_left: Callable[[uuid.UUID, uuid.UUID], Awaitable[None]] | None = None
    load_participant: ParticipantLoader | None = None


@dataclass
class SourceState:
    """What the relay knows about one source of one participant."""

    declared: bool = False  # the participant said it is on
    mid: str | None = None  # publish-PC transceiver carrying it
    muted: bool = False  # moderator mute
    active: bool = False  # transceiver negotiated to send (last evaluation)
    open: bool = False  # forwarded and (mic/screen) recorded (last evaluation)
    bound: EncodedSource | None = None


class Participant:
    """A room member; survives reconnects (a new ``PeerSession`` replaces the old one)."""

    def __init__(self, relay: Relay, room_id: uuid.UUID, participant_id: uuid.UUID,
                 display_name: str, role: str) -> None:
        self.id = participant_id
        self.display_name = display_name
        self.role = role
        self.session: PeerSession | None = None
        self.sources: dict[str, SourceState] = {name: SourceState() for name in SOURCES}
        self.announcer = SegmentAnnouncer(relay.callbacks.on_segment_closed)
        common: dict[str, Any] = {"room_id": room_id, "participant_id": participant_id,
                                  "spool_dir": relay.spool_dir, "announcer": self.announcer}
        self.recorders: dict[str, SourceRecorder | SnapshotRecorder] = {
            "mic": SourceRecorder(source="mic", segment_seconds=relay.segment_seconds,
                                  request_keyframe=self._keyframe("mic"), **common),
            "screen": SourceRecorder(source="screen", segment_seconds=relay.segment_seconds,
                                     request_keyframe=self._keyframe("screen"), **common),
            "camera": SnapshotRecorder(interval=relay.snapshot_interval,
                                       request_keyframe=self._keyframe("camera"), **common),
        }
        self.snapshot_interval = relay.snapshot_interval
        self.records = relay.record
        self.mute_changes = 0  # bumped by every live mute/unmute (a stored state read earlier is older)

    def _keyframe(self, source: str) -> Callable[[], None]:
        def request() -> None:
            bound = self.sources[source].bound
            if bound is not None:
                bound.request_keyframe()
        return request

    def state(self) -> dict[str, Any]:
        sources = {
            name: {
                "enabled": st.declared, "muted": st.muted, "active": st.active,
                "recording": st.open and name != "camera" and self.records,
                "snapshots": st.open and name == "camera" and self.snapshot_interval > 0 and self.records,
            }
            for name, st in self.sources.items()
        }
        return {
            "participant_id": str(self.id), "display_name": self.display_name, "role": self.role,
            "recording": any(s["recording"] for s in sources.values()), "sources": sources,
        }

    async def close_recorders(self, reason: CloseReason) -> None:
        for rec in self.recorders.values():
            await rec.aclose(reason)


@dataclass
class Room:
    id: uuid.UUID
    participants: dict[uuid.UUID, Participant] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ended: bool = False
    last_snapshot: list[dict[str, Any]] = field(default_factory=list)


class Relay:
    """Rooms of participants; forwards every participant's mic, camera and screen to the others
    as encoded packets and records mic and screen while (and only while) they are on."""

    def __init__(self, spool_dir: Path, ice_servers: list[dict[str, Any]] | None = None, *,
                 segment_seconds: float = 10.0, snapshot_interval: float = 30.0, ice_timeout: float = 20.0,
                 callbacks: RelayCallbacks | None = None, record: bool = True) -> None:
        check_internals()
        self.record = record  # False: forward only (benchmarks, relay-only nodes); never records more
        self.spool_dir = Path(spool_dir)
        self.ice_servers = list(ice_servers or [])
        self.segment_seconds = segment_seconds
        self.snapshot_interval = snapshot_interval
        self.ice_timeout = ice_timeout
        self.callbacks = callbacks or RelayCallbacks()
        self.rooms: dict[uuid.UUID, Room] = {}
        self.closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- public API ------------------------------------------------------------------------

    def recover(self) -> list[RecoveredSegment]:
        """Finalise/discard segments left in the spool by a crash (call before serving)."""
        return recover_spool(self.spool_dir)

    def participants(self, room_id: uuid.UUID) -> list[dict[str, Any]]:
        room = self.rooms.get(room_id)
        return [p.state() for p in room.participants.values()] if room else []

    async def connect(self, room_id: uuid.UUID, participant_id: uuid.UUID, display_name: str, role: str,
                      channel: Channel) -> None:
        """Run one participant's signaling loop until they leave (see ``classroom.signaling``)."""
        if self.closed:
            await self._say(channel, {"type": "removed", "reason": "shutdown"})
            await channel.close()
            return
        room = self.rooms.get(room_id)
        if room is None or room.ended:
            room = self.rooms[room_id] = Room(room_id)
        p = room.participants.get(participant_id)
        old: PeerSession | None = None
        if p is None:
            p = room.participants[participant_id] = Participant(self, room_id, participant_id, display_name, role)
        else:
            p.display_name, p.role = display_name, role
            old = p.session
        session = PeerSession(participant_id=participant_id, channel=channel, ice_servers=self.ice_servers,
                              ice_timeout=self.ice_timeout, on_failure=self._on_session_failure,
                              label=f"{room_id}/{participant_id}", room_id=room_id)
        p.session = session
        if old is not None:
            # a reconnect takes over: the old connection's declarations die with it
            for st in p.sources.values():
                st.declared, st.mid = False, None
            await self._drop(room, p, old, {"type": "removed", "reason": "replaced"}, "left")
        try:
            # Nothing of this session is forwarded or recorded before its first offer, which is
            # read only after this: a stored mute holds from the first packet.
            muted = await self._restore(room, p)
        except Exception:
            log.exception("could not load the stored state of %s; refusing the connection", session.label)
            await self._drop(room, p, session, {"type": "removed", "reason": "unavailable"}, "left")
            return
        await self._say(channel, {"type": "welcome", "room_id": str(room_id), "participant_id": str(participant_id),
                                  "ice_servers": self.ice_servers,
                                  "accepted_codecs": {"audio": "opus", "video": "VP8"}})
        for source in muted:
            await self._say(channel, {"type": "muted", "source": source, "muted": True})
        await self._say(channel, {"type": "participants", "participants": self.participants(room_id)})
        await self._refresh(room, by="participant")
        try:
            while not session.closed:
                raw = await channel.receive()
                try:
                    msg = parse_client_message(raw)
                    if isinstance(msg, LeaveMsg):
                        break
                    await self._handle(room, p, session, msg)
                except SignalingError as exc:
                    await self._say(channel, error_message(exc))
                except ChannelClosed:
                    raise
                except Exception:
                    log.exception("signaling message failed for %s", session.label)
                    await self._say(channel, error_message("internal error handling the message", "InternalError"))
        except ChannelClosed:
            pass
        finally:
            await self._drop(room, p, session, None, "left")

    async def mute(self, room_id: uuid.UUID, participant_id: uuid.UUID, source: str = "mic",
                   by: str = "moderator") -> None:
        """Stop forwarding and recording ``source`` at once and tell the participant."""
        await self._set_mute(room_id, participant_id, source, True, by)

    async def unmute(self, room_id: uuid.UUID, participant_id: uuid.UUID, source: str = "mic",
                     by: str = "moderator") -> None:
        await self._set_mute(room_id, participant_id, source, False, by)

    async def remove(self, room_id: uuid.UUID, participant_id: uuid.UUID, reason: str = "removed") -> None:
        """Disconnect a participant (their open segments close with reason "left")."""
        room, p = self._find(room_id, participant_id)
        if p.session is not None:
            await self._drop(room, p, p.session, {"type": "removed", "reason": reason}, "left")

    async def notify(self, room_id: uuid.UUID, participant_id: uuid.UUID, message: dict[str, Any]) -> None:
        """Send ``message`` to one participant and tell the room's teachers it was shown."""
        room, p = self._find(room_id, participant_id)
        if p.session is not None:
            await self._say(p.session.channel, message)
        shown = {"type": "notice_shown", "kind": message.get("kind"), "participant_id": str(p.id),
                 "display_name": p.display_name, "at": message.get("at"), "details": message.get("details", {})}
        for other in list(room.participants.values()):
            if other.role == "teacher" and other.id != p.id and other.session is not None:
                await self._say(other.session.channel, shown)

    async def end_room(self, room_id: uuid.UUID) -> None:
        """End the class: everyone gets "ended", every open segment closes with reason "ended"."""
        room = self.rooms.get(room_id)
        if room is None:
            return
        await self._end(room, {"type": "ended"})

    async def close(self) -> None:
        """Shut the engine down, closing every open segment cleanly (reason "ended")."""
        self.closed = True
        for room in list(self.rooms.values()):
            await self._end(room, {"type": "removed", "reason": "shutdown"})
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)

    # --- internals -------------------------------------------------------------------------

    def _find(self, room_id: uuid.UUID, participant_id: uuid.UUID) -> tuple[Room, Participant]:
        room = self.rooms.get(room_id)
        p = room.participants.get(participant_id) if room else None
        if room is None or p is None:
            raise NotFound("participant is not in this live class")
        return room, p

    async def _end(self, room: Room, message: dict[str, Any]) -> None:
        room.ended = True
        for p in list(room.participants.values()):
            if p.session is not None:
                await self._drop(room, p, p.session, message, "ended")
            else:
                await self._forget(room, p, "ended")
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]

    async def _restore(self, room: Room, p: Participant) -> list[str]:
        """Apply what is stored about a (re)connecting participant; returns the muted sources."""
        if self.callbacks.load_participant is not None:
            changes = p.mute_changes
            stored = await self.callbacks.load_participant(room.id, p.id)
            if p.mute_changes == changes:  # else a live (un)mute arrived while we read, and is newer
                for name, st in p.sources.items():
                    st.muted = name in stored.muted
            for rec in p.recorders.values():
                rec.continue_numbering(stored.next_seq.get(rec.segment_source, 0))
        return [name for name, st in p.sources.items() if st.muted]

    async def _set_mute(self, room_id: uuid.UUID, participant_id: uuid.UUID, source: str, muted: bool,
                        by: str) -> None:
        if source not in SOURCES:
            raise SignalingError(f"unknown source {source!r}")
        room, p = self._find(room_id, participant_id)
        p.mute_changes += 1
        if p.sources[source].muted == muted:
            return
        p.sources[source].muted = muted
        await self._refresh(room, by=by)
        if p.session is not None:
            await self._say(p.session.channel, {"type": "muted", "source": source, "muted": muted})

    async def _handle(self, room: Room, p: Participant, session: PeerSession,
                      msg: OfferMsg | AnswerMsg | SourceMsg) -> None:
        if isinstance(msg, OfferMsg):
            answer = await session.handle_offer(msg.sdp)
            await self._say(session.channel, {"type": "answer", "pc": "publish", "sdp": answer})
            await self._refresh(room, by="participant")
        elif isinstance(msg, AnswerMsg):
            await session.handle_answer(msg.sdp)
        else:
            st = p.sources[msg.source]
            if msg.enabled:
                assert msg.mid is not None
                kind = session.kind_of(msg.mid)
                if kind is None:
                    raise SignalingError(f"unknown mid {msg.mid!r}: no transceiver of your publish connection "
                                         "has it; offer it first, then declare the source")
                if kind != SOURCE_KIND[msg.source]:
                    raise SignalingError(f"mid {msg.mid} carries {kind}; {msg.source} must be "
                                         f"{SOURCE_KIND[msg.source]}")
                for other, ost in p.sources.items():
                    if other != msg.source and ost.mid == msg.mid:
                        raise SignalingError(f"mid {msg.mid} already carries {other}")
                st.mid = msg.mid
                st.declared = True
            else:
                st.declared = False  # switching off always applies; an unknown mid is not kept
                if msg.mid is not None and st.mid is None and session.kind_of(msg.mid) is not None:
                    st.mid = msg.mid
            await self._refresh(room, by="participant")

    async def _refresh(self, room: Room, *, by: str, reason: CloseReason | None = None) -> None:
        """Re-evaluate every gate in the room, rewire sinks and subscriptions, tell everyone."""
        async with room.lock:
            changes: list[tuple[Participant, str, bool]] = []
            for p in room.participants.values():
                s = p.session
                bound_now: set[int] = set()
                for name, st in p.sources.items():
                    enc = s.encoded.get(st.mid) if (s is not None and st.mid is not None) else None
                    if enc is not None and enc.kind != SOURCE_KIND[name]:
                        enc = None  # a declaration naming the wrong kind never opens anything
                    active = enc is not None and s is not None and s.mid_active(st.mid)
                    is_open = st.declared and active and not st.muted and not room.ended
                    sink = p.recorders[name]
                    if st.bound is not enc:
                        if st.bound is not None:
                            st.bound.remove_sink(sink.push)
                            st.bound.open = False
                        st.bound = enc
                        if enc is not None:
                            enc.add_sink(sink.push)
                    if enc is not None:
                        bound_now.add(id(enc))
                        enc.open = is_open
                    if is_open and self.record:
                        sink.enable()
                    elif sink.enabled:
                        sink.disable(reason or self._close_reason(room, p, st))
                    if is_open != st.open:
                        changes.append((p, name, is_open))
                    st.open, st.active = is_open, active
                if s is not None:
                    for enc in s.encoded.values():
                        if id(enc) not in bound_now:
                            enc.open = False  # undeclared tracks are never forwarded or written
            for sub in room.participants.values():
                if sub.session is None:
                    continue
                desired: dict[SubKey, EncodedSource] = {}
                for pub in room.participants.values():
                    if pub is sub or pub.session is None:
                        continue
                    for name, st in pub.sources.items():
                        if st.bound is not None and st.declared and st.active:
                            desired[(pub.id, name)] = st.bound
                sub.session.sync_subscriptions(desired)
            snapshot = [p.state() for p in room.participants.values()]
            announce = snapshot != room.last_snapshot
            room.last_snapshot = snapshot
        now = datetime.now(UTC)
        for p, name, is_open in changes:
            st = p.sources[name]
            await self._broadcast(room, {
                "type": "source_state", "participant_id": str(p.id), "source": name, "enabled": st.declared,
                "muted": st.muted, "active": st.active, "recording": is_open and name != "camera" and self.record,
                "snapshots": is_open and name == "camera" and self.snapshot_interval > 0 and self.record,
            })
            if self.callbacks.on_source_changed is not None:
                try:
                    await self.callbacks.on_source_changed(room.id, p.id, name, is_open, now, by)
                except Exception:
                    log.exception("on_source_changed failed")
        if announce:
            await self._broadcast(room, {"type": "participants", "participants": snapshot})

    @staticmethod
    def _close_reason(room: Room, p: Participant, st: SourceState) -> CloseReason:
        if room.ended:
            return "ended"
        if st.muted:
            return "muted"
        if p.session is None:
            return "left"
        return "disabled"

    async def _on_session_failure(self, session: PeerSession, reason: str) -> None:
        room = self.rooms.get(session.room_id) if session.room_id is not None else None
        p = room.participants.get(session.participant_id) if room else None
        if room is None or p is None:
            await session.close()
            return
        # run the drop on its own task: the caller may be one of the session's tasks it cancels
        task = asyncio.ensure_future(self._drop(room, p, session, {"type": "removed", "reason": reason}, "left"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop(self, room: Room, p: Participant, session: PeerSession, message: dict[str, Any] | None,
                    reason: CloseReason) -> None:
        """End one session: tell the client, close its segments and peers; forget the participant
        unless a newer session took over. Idempotent; concurrent callers wait for the first."""
        if session.drop_started:
            await session.dropped.wait()
            return
        session.drop_started = True
        try:
            if message is not None:
                await self._say(session.channel, message)
            try:
                await session.channel.close()
            except Exception:  # the transport may already be gone
                log.debug("closing channel failed", exc_info=True)
            current = p.session is session
            if current:
                p.session = None
            await self._refresh(room, by="system", reason=reason)
            if current and room.participants.get(p.id) is p and p.session is None:
                await self._forget(room, p, reason)  # before closing the peers, which can take a while
            await session.close()
        finally:
            session.dropped.set()

    async def _forget(self, room: Room, p: Participant, reason: CloseReason) -> None:
        room.participants.pop(p.id, None)
        await self._refresh(room, by="system")  # the room sees them gone at once, not after the last upload
        await p.close_recorders(reason)
        if self.callbacks.on_participant_left is not None:
            try:
                await self.callbacks.on_participant_left(room.id, p.id)
            except Exception:
                log.exception("on_participant_left failed")
        if not room.participants and self.rooms.get(room.id) is room and not room.ended:
            del self.rooms[room.id]

    async def _broadcast(self, room: Room, message: dict[str, Any]) -> None:
        for p in list(room.participants.values()):
            if p.session is not None and not p.session.drop_started:
                await self._say(p.session.channel, message)

    @staticmethod
    async def _say(channel: Channel, message: dict[str, Any]) -> None:
        try:
            await channel.send(message)
        except Exception:  # a gone client is noticed by its receive loop
            log.debug("send failed", exc_info=True)
