"""One connection of one participant: the publish and subscribe peer connections and their tracks.

A ``PeerSession`` lives from ``Relay.connect`` until the participant leaves, is removed, or
reconnects (a new session replaces it). It knows nothing about rooms or recording: the relay
reads ``encoded`` / ``mid_active`` to decide gates, and hands it the set of sources it should
forward (``sync_subscriptions``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from classroom.encoded import hook_sender_keyframe
from classroom.media_source import EncodedSource, SubscriberTrack
from classroom.signaling import Channel, ChannelClosed, SignalingError, parse_offer, validate_answer

log = logging.getLogger("classguard.relay")

SubKey = tuple[uuid.UUID, str]  # (publisher participant id, source)


def _preferred(kind: str, *, sender: bool) -> list[Any]:
    caps = (RTCRtpSender if sender else RTCRtpReceiver).getCapabilities(kind)
    wanted = ("audio/opus",) if kind == "audio" else ("video/vp8", "video/rtx")
    assert caps is not None
    return [c for c in caps.codecs if c.mimeType.lower() in wanted]


def make_configuration(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    """An aiortc configuration; an empty list means host candidates only (no default STUN)."""
    return RTCConfiguration(iceServers=[RTCIceServer(**s) for s in ice_servers])


@dataclass
class SubSlot:
    """A server→client transceiver on the subscribe PC, reusable once its publisher is gone."""

    transceiver: RTCRtpTransceiver
    track: SubscriberTrack
    kind: str
    key: SubKey | None = None


class PeerSession:
    """The publish PC (client offers) and subscribe PC (server offers) of one participant."""

    def __init__(self, *, participant_id: uuid.UUID, channel: Channel, ice_servers: list[dict[str, Any]],
                 ice_timeout: float, on_failure: Callable[[PeerSession, str], Awaitable[None]],
                 label: str = "", room_id: uuid.UUID | None = None) -> None:
        self.participant_id = participant_id
        self.room_id = room_id
        self.channel = channel
        self.ice_servers = ice_servers
        self.ice_timeout = ice_timeout
        self.on_failure = on_failure
        self.label = label or str(participant_id)
        self.publish_pc: RTCPeerConnection | None = None
        self.subscribe_pc: RTCPeerConnection | None = None
        self.encoded: dict[str, EncodedSource] = {}  # publish mid -> shared encoded stream
        self.offer_dirs: dict[str, str] = {}  # publish mid -> the client's offered direction
        self.slots: list[SubSlot] = []
        self.closed = False
        self.drop_started = False
        self.dropped: asyncio.Event = asyncio.Event()
        self._desired: dict[SubKey, EncodedSource] = {}
        self._negotiation: asyncio.Task[None] | None = None
        self._renegotiate = False
        self._answer: asyncio.Future[str] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- helpers --------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _new_pc(self, name: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(make_configuration(self.ice_servers))

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if self.closed:
                return
            log.debug("%s %s PC: %s", self.label, name, pc.connectionState)
            if pc.connectionState == "failed":
                await self.on_failure(self, "connection-failed")

        return pc

    async def _watch_ice(self, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(self.ice_timeout)
        if not self.closed and pc.connectionState != "connected":
            log.info("%s: ICE did not complete in %.1f s", self.label, self.ice_timeout)
            await self.on_failure(self, "ice-timeout")

    # --- publish PC (client offers) -------------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        """Apply the client's publish offer and return the answer SDP."""
        media = parse_offer(sdp)
        first = self.publish_pc is None
        if self.publish_pc is None:
            self.publish_pc = self._new_pc("publish")
        pc = self.publish_pc
        if pc.signalingState != "stable":
            raise SignalingError(f"publish connection is in state {pc.signalingState}; offer refused")
        known = {t.mid for t in pc.getTransceivers() if t.mid is not None}
        fresh: list[tuple[RTCRtpTransceiver, EncodedSource]] = []
        for m in media:
            if m.kind in ("audio", "video") and m.mid not in known:
                # Pre-create the receiving transceiver so that (a) only Opus / VP8 can be
                # negotiated and (b) the receiver is tapped before aiortc starts its decoder.
                t = pc.addTransceiver(m.kind, direction="recvonly")
                t.setCodecPreferences(_preferred(m.kind, sender=False))
                fresh.append((t, EncodedSource(m.kind, t.receiver, f"{self.label}/{m.mid}")))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc's own message may name internals: logged, not sent
            log.info("offer could not be applied for %s: %r", self.label, exc)
            raise SignalingError("offer could not be applied: the relay cannot negotiate this session "
                                 "description") from exc
        for t, source in fresh:
            if t.mid is None:
                continue
            self.encoded[t.mid] = source
        for m in media:
            self.offer_dirs[m.mid] = m.direction
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        if first:
            self._spawn(self._watch_ice(pc))
        return pc.localDescription.sdp

    def transceiver_for(self, mid: str) -> RTCRtpTransceiver | None:
        if self.publish_pc is None:
            return None
        for t in self.publish_pc.getTransceivers():
            if t.mid == mid:
                return t
        return None

    def mid_active(self, mid: str | None) -> bool:
        """True while the client's transceiver ``mid`` is negotiated to send to us."""
        if mid is None or self.closed:
            return False
        t = self.transceiver_for(mid)
        if t is None or t.stopped or mid not in self.encoded:
            return False
        return (t.currentDirection in ("recvonly", "sendrecv")
                and self.offer_dirs.get(mid) in ("sendonly", "sendrecv"))

    def kind_of(self, mid: str) -> str | None:
        source = self.encoded.get(mid)
        return source.kind if source is not None else None

    # --- subscribe PC (server offers) ------------------------------------------------------

    def sync_subscriptions(self, desired: dict[SubKey, EncodedSource]) -> None:
        """Forward exactly ``desired``; renegotiates the subscribe PC when the set changes."""
        if self.closed:
            return
        changed = set(desired) != {s.key for s in self.slots if s.key is not None}
        self._desired = dict(desired)
        for slot in self.slots:  # same publisher source, new track behind it: no SDP change
            if slot.key is not None and slot.key in desired and slot.track.source is not desired[slot.key]:
                slot.track.attach(desired[slot.key])
        if changed:
            self._renegotiate = True
            if self._negotiation is None or self._negotiation.done():
                self._negotiation = self._spawn(self._negotiate())

    def _apply_desired(self) -> list[SubSlot]:
        """Bind transceivers to the desired sources; returns the slots that start sending."""
        assert self.subscribe_pc is not None
        started: list[SubSlot] = []
        for slot in self.slots:
            if slot.key is not None and slot.key not in self._desired:
                slot.track.attach(None)
                slot.transceiver.direction = "inactive"
                slot.key = None
        bound = {s.key for s in self.slots if s.key is not None}
        for key, source in self._desired.items():
            if key in bound:
                continue
            free = next((s for s in self.slots if s.key is None and s.kind == source.kind), None)
            if free is not None:
                slot = free
            else:
                track = SubscriberTrack(source.kind)
                t = self.subscribe_pc.addTransceiver(track, direction="sendonly")
                t.setCodecPreferences(_preferred(source.kind, sender=True))
                hook_sender_keyframe(t.sender, track.request_keyframe)
                slot = SubSlot(t, track, source.kind)
                self.slots.append(slot)
            slot.key = key
            slot.transceiver.direction = "sendonly"
            slot.track.attach(source)
            started.append(slot)
        return started

    async def _negotiate(self) -> None:
        first = self.subscribe_pc is None
        if self.subscribe_pc is None:
            self.subscribe_pc = self._new_pc("subscribe")
        pc = self.subscribe_pc
        started: list[SubSlot] = []
        while self._renegotiate and not self.closed:
            self._renegotiate = False
            started += self._apply_desired()
            if not self.slots:
                return
            await pc.setLocalDescription(await pc.createOffer())
            tracks = {s.transceiver.mid: {"participant_id": str(s.key[0]), "source": s.key[1]}
                      for s in self.slots if s.key is not None and s.transceiver.mid is not None}
            self._answer = asyncio.get_running_loop().create_future()
            try:
                await self.channel.send({"type": "offer", "pc": "subscribe", "sdp": pc.localDescription.sdp,
                                         "tracks": tracks})
            except ChannelClosed:
                return
            if first:
                first = False
                self._spawn(self._watch_ice(pc))
            try:
                sdp = await asyncio.wait_for(self._answer, self.ice_timeout)
            except TimeoutError:
                log.info("%s: no answer to the subscribe offer in %.1f s", self.label, self.ice_timeout)
                await self.on_failure(self, "ice-timeout")
                return
            finally:
                self._answer = None
            if self.closed:
                return
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:  # a bad answer: say so and offer again
                try:
                    await self.channel.send({"type": "error", "error": "BadRequest",
                                             "detail": f"answer could not be applied: {exc}"})
                except ChannelClosed:
                    return
                self._renegotiate = True
                continue
            for slot in started:
                if slot.key is not None:
                    slot.track.restart()  # the sender was disabled until now: gate on a fresh keyframe
            started = []

    async def handle_answer(self, sdp: str) -> None:
        """The client's answer to our latest subscribe offer."""
        validate_answer(sdp)
        if self._answer is None or self._answer.done():
            raise SignalingError("no subscribe offer is waiting for an answer")
        self._answer.set_result(sdp)

    # --- teardown --------------------------------------------------------------------------

    async def close(self) -> None:
        """Close both PCs and release every track (idempotent)."""
        if self.closed:
            return
        self.closed = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        for slot in self.slots:
            slot.track.attach(None)
        for source in self.encoded.values():
            source.open = False
            source.sinks.clear()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                try:
                    await pc.close()
                except Exception:  # a half-negotiated PC may fail to close cleanly; it is gone anyway
                    log.exception("%s: error closing a peer connection", self.label)
