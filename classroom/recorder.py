"""Consent-bound recording: rolling WebM segments of encoded packets, camera keyframe snapshots.

The privacy promise lives here and in the gate that feeds it: a ``SourceRecorder`` writes only
packets pushed while its owner has it ``enabled`` (the relay enables it only while the source is
declared on, its transceiver is active and no moderator mute holds), and ``disable(reason)``
closes the open segment at once. Packets are muxed as they arrive, without decoding or
re-encoding, by one writer thread per recorder (file I/O never blocks the event loop); the open
file gets a closed cluster and a flush about once a second, so a kill -9 loses only its last second.

Segments go to ``<spool>/<room>/<participant>/<source>/<seq>.webm.part`` and are renamed to
``.webm`` when closed; each closed one is announced once through an async callback. A segment
opens on a keyframe (video), is cut after ``segment_seconds`` at the next keyframe (a PLI is sent
at the boundary), so every file plays alone. The container carries ``CLASSGUARD_STARTED_AT`` so a
leftover file can be recovered after a crash (``classroom.spool``).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import av

from classroom.encoded import vp8_dimensions
from classroom.media_source import MediaPacket
from classroom.spool import STARTED_AT_TAG, next_seq, segment_dir

log = logging.getLogger("classguard.recorder")

SegmentSource = Literal["mic", "screen", "snapshot"]
CloseReason = Literal["boundary", "disabled", "left", "ended", "muted"]
MS = fractions.Fraction(1, 1000)
KEYFRAME_RETRY_SECONDS = 1.0
# Packets go to the writer thread in small batches: one thread wake-up per batch instead of per
# packet keeps a recorded source near 0.1-0.5 % of a core; a crash loses at most this much more.
FLUSH_SECONDS = 0.25
# The WebM muxer holds a whole cluster in memory (5 s by default) and the file layer buffers 32 KB
# (~8 s of Opus) more, so a kill -9 used to leave an open segment with no packet on disk. Closing a
# cluster every second and flushing the file layer after it puts the open segment's data in the
# file (the OS page cache, which outlives the process) about once a second, for one write(2) per
# second per source. A crash then loses about the last 1-1.5 s of the open segment, not all of it.
CLUSTER_MS = 1000
_LIVE_FILE_OPTIONS = {"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"}


@dataclass(frozen=True)
class ClosedSegment:
    """A finished, independently playable WebM slice of one participant's one source."""

    room_id: uuid.UUID
    participant_id: uuid.UUID
    source: SegmentSource
    path: Path
    started_at: datetime  # UTC, arrival of the first packet
    ended_at: datetime  # UTC, arrival of the last packet plus its duration
    duration: float  # media seconds in the file
    reason: CloseReason
    seq: int


SegmentCallback = Callable[[ClosedSegment], Awaitable[None]]


class WebmSegmentFile:
    """One WebM file being written with encoded packets (used from the writer thread only)."""

    def __init__(self, path: Path, kind: str, started_at: datetime,
                 width: int | None = None, height: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container: Any = av.open(str(path), "w", format="webm", container_options=_LIVE_FILE_OPTIONS)
        self.container.metadata[STARTED_AT_TAG] = started_at.isoformat()
        if kind == "video":
            self.stream: Any = self.container.add_mux_stream("vp8", width=width, height=height)
        else:
            # add_mux_stream("opus") writes no OpusHead; an opened-but-never-fed libopus encoder
            # provides a valid one (FIELD-NOTES), so players accept the file.
            self.stream = self.container.add_stream("libopus", rate=48000)
        self.stream.time_base = MS
        self.packets = 0

    def write(self, data: bytes, pts_ms: int, keyframe: bool) -> None:
        packet = av.Packet(data)
        packet.pts = pts_ms
        packet.dts = pts_ms
        packet.time_base = MS
        packet.stream = self.stream
        packet.is_keyframe = keyframe
        self.container.mux(packet)
        self.packets += 1

    def close(self, final_path: Path) -> None:
        self.container.close()
        self.path.rename(final_path)


@dataclass
class _OpenSegment:
    seq: int
    part_path: Path
    first_pts: int
    last_pts: int
    last_pts_ms: int
    started: float  # epoch seconds of first arrival
    last_arrival: float
    last_step: float  # seconds between the last two packets (the last packet's duration)
    packets: int
    width: int | None
    height: int | None
    file: Future[WebmSegmentFile]
    pending: list[tuple[bytes, int, bool]]
    pending_since: float


class SegmentAnnouncer:
    """Runs the domain's async callback for each closed segment; a failing callback is logged
    and the file stays in the spool for recovery."""

    def __init__(self, callback: SegmentCallback | None) -> None:
        self.callback = callback
        self.pending: set[asyncio.Future[Any]] = set()

    def after(self, done: Future[Any], segment: ClosedSegment) -> None:
        async def run() -> None:
            try:
                await asyncio.wrap_future(done)
            except Exception:
                log.exception("could not finish segment %s; left in the spool", segment.path)
                return
            if self.callback is None:
                return
            try:
                await self.callback(segment)
            except Exception:
                log.exception("on_segment_closed failed for %s; the file stays in the spool", segment.path)

        task = asyncio.ensure_future(run())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def drain(self) -> None:
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)


class _Writer:
    """One thread that owns a recorder's files (mux calls can block on disk)."""

    def __init__(self, name: str) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._name = name

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


class SourceRecorder:
    """Rolling segments of one participant's mic (audio) or screen (video).

    ``push`` is a packet sink (event loop); it writes only while ``enabled``.
    """

    def __init__(self, *, room_id: uuid.UUID, participant_id: uuid.UUID, source: Literal["mic", "screen"],
                 spool_dir: Path, segment_seconds: float, announcer: SegmentAnnouncer,
                 request_keyframe: Callable[[], None] | None = None) -> None:
        self.room_id = room_id
        self.participant_id = participant_id
        self.source: Literal["mic", "screen"] = source
        self.kind = "audio" if source == "mic" else "video"
        self.dir = segment_dir(spool_dir, room_id, participant_id, source)
        self.segment_seconds = segment_seconds
        self.announcer = announcer
        self.request_keyframe = request_keyframe or (lambda: None)
        self.segment_source: SegmentSource = source
        self.enabled = False
        self.segment: _OpenSegment | None = None
        self.dropped_while_off = 0
        self.closed_segments = 0
        self._next_seq: int | None = None
        self._cut_requested_at = 0.0
        self._writer = _Writer(f"rec-{source}")

    # --- gate ------------------------------------------------------------------------------

    def enable(self) -> None:
        if not self.enabled:
            self.enabled = True
            if self.kind == "video":
                self.request_keyframe()

    def disable(self, reason: CloseReason) -> None:
        """Stop writing now and close the open segment (nothing after this call is written)."""
        self.enabled = False
        self._close(reason)

    def continue_numbering(self, first_free: int) -> None:
        """Number the next segments from at least ``first_free`` (a rejoin continues after the
        slices already stored, whose spool files are gone)."""
        self._next_seq = max(self._next_seq if self._next_seq is not None else next_seq(self.dir), first_free)

    async def aclose(self, reason: CloseReason) -> None:
        """Disable, close the open segment and wait until it is announced; release the thread."""
        self.disable(reason)
        await self.announcer.drain()
        self._writer.shutdown()

    # --- packets ---------------------------------------------------------------------------

    def push(self, packet: MediaPacket) -> None:
        if not self.enabled:
            self.dropped_while_off += 1
            return
        seg = self.segment
        if seg is not None:
            if self._should_cut(seg, packet):
                self._close("boundary")
                seg = None
            else:
                self._append(seg, packet)
                return
        if self.kind == "video" and not packet.keyframe:
            self.request_keyframe()  # files start on a keyframe; ask for one and wait
            return
        self._open(packet)

    def _should_cut(self, seg: _OpenSegment, packet: MediaPacket) -> bool:
        elapsed = (packet.pts - seg.first_pts) / packet.clock
        if self.kind == "audio":
            return elapsed >= self.segment_seconds
        if packet.keyframe:
            dims = vp8_dimensions(packet.data)
            if dims is not None and dims != (seg.width, seg.height):
                return True  # a resolution change starts a new file with the right header
            return elapsed >= self.segment_seconds
        if elapsed >= self.segment_seconds:
            now = time.monotonic()
            if now - self._cut_requested_at >= KEYFRAME_RETRY_SECONDS:
                self._cut_requested_at = now
                self.request_keyframe()
        return False

    def _open(self, packet: MediaPacket) -> None:
        if self._next_seq is None:
            self._next_seq = next_seq(self.dir)
        seq = self._next_seq
        self._next_seq += 1
        dims = vp8_dimensions(packet.data) if self.kind == "video" else None
        width, height = dims if dims else (None, None)
        part = self.dir / f"{seq:06d}.webm.part"
        started = datetime.fromtimestamp(packet.arrived, UTC)
        file_future = self._writer.submit(WebmSegmentFile, part, self.kind, started, width, height)
        self.segment = _OpenSegment(seq, part, packet.pts, packet.pts, 0, packet.arrived, packet.arrived,
                                    packet.nominal_duration, 0, width, height, file_future, [], time.monotonic())
        self._write(self.segment, packet, 0)

    def _append(self, seg: _OpenSegment, packet: MediaPacket) -> None:
        pts_ms = round((packet.pts - seg.first_pts) * 1000 / packet.clock)
        if pts_ms <= seg.last_pts_ms:
            pts_ms = seg.last_pts_ms + 1  # the muxer needs strictly increasing timestamps
        seg.last_step = max(0.0, (packet.pts - seg.last_pts) / packet.clock) or packet.nominal_duration
        seg.last_pts = packet.pts
        self._write(seg, packet, pts_ms)

    def _write(self, seg: _OpenSegment, packet: MediaPacket, pts_ms: int) -> None:
        seg.last_pts_ms = pts_ms
        seg.last_arrival = packet.arrived
        seg.packets += 1
        if not seg.pending:
            seg.pending_since = time.monotonic()
        seg.pending.append((packet.data, pts_ms, packet.keyframe))
        if time.monotonic() - seg.pending_since >= FLUSH_SECONDS:
            self._flush(seg)

    def _flush(self, seg: _OpenSegment) -> None:
        if not seg.pending:
            return
        batch, seg.pending = seg.pending, []

        def job(fut: Future[WebmSegmentFile], items: list[tuple[bytes, int, bool]]) -> None:
            f = fut.result()
            for data, pts, key in items:
                f.write(data, pts, key)

        self._writer.submit(job, seg.file, batch)

    def _close(self, reason: CloseReason) -> None:
        seg = self.segment
        if seg is None:
            return
        self.segment = None
        self._cut_requested_at = 0.0
        self._flush(seg)
        duration = seg.last_pts_ms / 1000 + seg.last_step
        final = seg.part_path.with_name(f"{seg.seq:06d}.webm")
        closed = ClosedSegment(
            room_id=self.room_id, participant_id=self.participant_id, source=self.source, path=final,
            started_at=datetime.fromtimestamp(seg.started, UTC),
            ended_at=datetime.fromtimestamp(seg.last_arrival + seg.last_step, UTC),
            duration=round(duration, 3), reason=reason, seq=seg.seq,
        )

        def job(fut: Future[WebmSegmentFile]) -> None:
            fut.result().close(final)

        self.closed_segments += 1
        self.announcer.after(self._writer.submit(job, seg.file), closed)


class SnapshotRecorder:
    """Keeps one camera keyframe every ``interval`` seconds as a one-frame WebM (kind ``snapshot``);
    camera video itself is never recorded."""

    def __init__(self, *, room_id: uuid.UUID, participant_id: uuid.UUID, spool_dir: Path,
                 interval: float, announcer: SegmentAnnouncer,
                 request_keyframe: Callable[[], None] | None = None) -> None:
        self.room_id = room_id
        self.participant_id = participant_id
        self.dir = segment_dir(spool_dir, room_id, participant_id, "snapshot")
        self.interval = interval
        self.announcer = announcer
        self.request_keyframe = request_keyframe or (lambda: None)
        self.segment_source: SegmentSource = "snapshot"
        self.enabled = False
        self.taken = 0
        self._due = 0.0
        self._asked = 0.0
        self._next_seq: int | None = None
        self._writer = _Writer("snapshot")

    def enable(self) -> None:
        if not self.enabled:
            self.enabled = True
            self._due = time.monotonic()  # the first keyframe after switching on is kept
            self.request_keyframe()

    def disable(self, reason: CloseReason = "disabled") -> None:
        self.enabled = False

    def continue_numbering(self, first_free: int) -> None:
        """See ``SourceRecorder.continue_numbering``."""
        self._next_seq = max(self._next_seq if self._next_seq is not None else next_seq(self.dir), first_free)

    async def aclose(self, reason: CloseReason = "left") -> None:
        self.enabled = False
        await self.announcer.drain()
        self._writer.shutdown()

    def push(self, packet: MediaPacket) -> None:
        if not self.enabled or self.interval <= 0:
            return
        now = time.monotonic()
        if now < self._due:
            return
        if not packet.keyframe:
            if now - self._asked >= KEYFRAME_RETRY_SECONDS:
                self._asked = now
                self.request_keyframe()
            return
        dims = vp8_dimensions(packet.data)
        if dims is None:
            return
        self._due = now + self.interval
        if self._next_seq is None:
            self._next_seq = next_seq(self.dir)
        seq = self._next_seq
        self._next_seq += 1
        part = self.dir / f"{seq:06d}.webm.part"
        final = part.with_name(f"{seq:06d}.webm")
        at = datetime.fromtimestamp(packet.arrived, UTC)

        def job() -> None:
            f = WebmSegmentFile(part, "video", at, dims[0], dims[1])
            f.write(packet.data, 0, True)
            f.close(final)

        self.taken += 1
        segment = ClosedSegment(room_id=self.room_id, participant_id=self.participant_id, source="snapshot",
                                path=final, started_at=at, ended_at=at, duration=0.0, reason="boundary",
                                seq=seq)
        self.announcer.after(self._writer.submit(job), segment)
