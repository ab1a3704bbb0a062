"""One published track as a shared stream of encoded packets, and the per-subscriber proxy track.

``EncodedSource`` receives complete encoded frames from a tapped ``RTCRtpReceiver`` (see
``classroom.encoded``), guards their timestamps and fans them out to sinks: one
``SubscriberTrack`` per subscriber (whose ``recv()`` returns ``av.Packet`` so the sender packs
instead of encoding) and the recorder. Nothing is decoded or encoded here.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from classroom.encoded import request_keyframe, schedule, tap_receiver, vp8_is_keyframe

log = logging.getLogger("classguard.relay")

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
# How far a packet's timestamp may run ahead of its arrival gap before it counts as a jump
# (publisher restart, TimestampMapper's 2^32 wrap guess): generous for jitter and bursts.
MAX_PTS_LEAD_SECONDS = 1.0
KEYFRAME_REQUEST_INTERVAL = 0.3
ACCEPTED_CODECS = {"audio": "opus", "video": "VP8"}


@dataclass(slots=True)
class MediaPacket:
    """One complete encoded frame (a VP8 frame or an Opus packet) with a guarded timeline."""

    kind: str  # "audio" | "video"
    data: bytes
    pts: int  # in ``clock`` units, monotonic within one EncodedSource
    clock: int
    keyframe: bool
    arrived: float  # time.time() at arrival (UTC epoch seconds)

    @property
    def nominal_duration(self) -> float:
        return 0.02 if self.kind == "audio" else 1 / 30


PacketSink = Callable[[MediaPacket], None]


class EncodedSource:
    """The shared encoded stream of one remote track; sinks see packets only while ``open``.

    ``open`` is decided by the owner (declared on, transceiver active, not muted); when it is
    False packets are dropped here, before any subscriber or recorder sees them.
    """

    def __init__(self, kind: str, receiver: RTCRtpReceiver, label: str = "") -> None:
        self.kind = kind
        self.receiver = receiver
        self.label = label
        self.clock = AUDIO_CLOCK if kind == "audio" else VIDEO_CLOCK
        self.open = False
        self.sinks: list[PacketSink] = []
        self.packets_in = 0
        self.packets_dropped_closed = 0
        self.last_keyframe_at = 0.0
        self._last_in: int | None = None
        self._last_out = 0
        self._last_arrival = 0.0
        self._last_pli = 0.0
        self._pli_task: asyncio.Future[object] | None = None
        tap_receiver(receiver, self._on_frame)

    def _on_frame(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        self.packets_in += 1
        if codec.name.lower() != ACCEPTED_CODECS[self.kind].lower():
            return  # negotiation restricts codecs; anything else is never forwarded
        if not self.open:
            self.packets_dropped_closed += 1
            self._last_in = None  # resume with a fresh step after the gap
            return
        keyframe = self.kind == "audio" or vp8_is_keyframe(frame.data)
        now = time.time()
        packet = MediaPacket(self.kind, frame.data, self._guard_pts(frame.timestamp, now), self.clock,
                             keyframe, now)
        if keyframe and self.kind == "video":
            self.last_keyframe_at = packet.arrived
        for sink in list(self.sinks):
            try:
                sink(packet)
            except Exception:  # one failing sink must not starve the others
                log.exception("packet sink failed on %s", self.label)

    def _guard_pts(self, ts: int, arrived: float) -> int:
        """Map the receiver's timestamp onto a monotonic timeline that follows arrival time.

        A step that is backwards, or far larger than the time since the previous packet, is a
        discontinuity (publisher restart, TimestampMapper's 2^32 guess, frames held in the
        jitter buffer across an inactive spell): the timeline then advances by the arrival gap
        (at least one nominal frame) instead of jumping.
        """
        step_default = 960 if self.kind == "audio" else VIDEO_CLOCK // 30
        if self._last_in is None:
            out = self._last_out + max(step_default, round((arrived - self._last_arrival) * self.clock)) \
                if self._last_arrival else 0
        else:
            delta = ts - self._last_in
            gap = max(0.0, arrived - self._last_arrival)
            if delta <= 0 or delta > (gap + MAX_PTS_LEAD_SECONDS) * self.clock:
                delta = max(step_default, round(gap * self.clock))
            out = self._last_out + delta
        self._last_in = ts
        self._last_out = out
        self._last_arrival = arrived
        return out

    def add_sink(self, sink: PacketSink) -> None:
        if sink not in self.sinks:
            self.sinks.append(sink)

    def remove_sink(self, sink: PacketSink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)

    def request_keyframe(self, *, force: bool = False) -> None:
        """Ask the publisher for a keyframe (PLI), at most one per 300 ms."""
        if self.kind != "video":
            return
        now = time.monotonic()
        if not force and now - self._last_pli < KEYFRAME_REQUEST_INTERVAL:
            return
        if self._pli_task is not None and not self._pli_task.done():
            return
        self._last_pli = now
        self._pli_task = schedule(request_keyframe(self.receiver))


class SubscriberTrack(MediaStreamTrack):
    """The track one subscriber's sender reads: ``av.Packet`` s from an attached ``EncodedSource``.

    Persistent per subscriber transceiver; ``attach`` switches it to another source (the
    transceiver is reused). Its own timeline keeps RTP timestamps continuous across switches.
    A new attachment and a queue overflow wait for the next keyframe (and request one).
    """

    def __init__(self, kind: str, max_queue: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.source: EncodedSource | None = None
        self.max_queue = max_queue or (50 if kind == "audio" else 90)
        self._queue: asyncio.Queue[MediaPacket] = asyncio.Queue()
        self._waiting_keyframe = kind == "video"
        self._time_base = fractions.Fraction(1, AUDIO_CLOCK if kind == "audio" else VIDEO_CLOCK)
        self._offset: int | None = None
        self._last_out = 0
        self.packets_out = 0
        self.dropped_overflow = 0

    def attach(self, source: EncodedSource | None) -> None:
        if self.source is source:
            return
        if self.source is not None:
            self.source.remove_sink(self.push)
        self.source = source
        self._drain()
        self._offset = None
        if source is not None:
            self._waiting_keyframe = self.kind == "video"
            source.add_sink(self.push)
            source.request_keyframe(force=True)

    def restart(self) -> None:
        """Start over at the next keyframe (the sender was just enabled by a negotiation)."""
        if self.kind == "video" and self.source is not None:
            self._drain()
            self._waiting_keyframe = True
            self.source.request_keyframe(force=True)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def push(self, packet: MediaPacket) -> None:
        if self._waiting_keyframe:
            if not packet.keyframe:
                return
            self._waiting_keyframe = False
        if self._queue.qsize() >= self.max_queue:
            self.dropped_overflow += self._queue.qsize()
            self._drain()
            if self.kind == "video":
                # a slow subscriber resumes cleanly at the next keyframe instead of smearing
                self._waiting_keyframe = True
                if self.source is not None:
                    self.source.request_keyframe()
                if not packet.keyframe:
                    return
                self._waiting_keyframe = False
        self._queue.put_nowait(packet)

    def request_keyframe(self) -> None:
        """The subscriber sent PLI/FIR: pass it up to the publisher (rate-limited there)."""
        if self.source is not None:
            self.source.request_keyframe()

    async def recv(self) -> av.Packet:  # type: ignore[override]
        packet = await self._queue.get()
        if self._offset is None:
            step = 960 if self.kind == "audio" else VIDEO_CLOCK // 30
            self._offset = self._last_out + step - packet.pts if self.packets_out else -packet.pts
        pts = packet.pts + self._offset
        if pts <= self._last_out and self.packets_out:
            self._offset += self._last_out + 1 - pts
            pts = self._last_out + 1
        self._last_out = pts
        self.packets_out += 1
        out = av.Packet(packet.data)
        out.pts = pts
        out.time_base = self._time_base
        return out

    def stop(self) -> None:
        self.attach(None)
        super().stop()
