"""The recorder's spool directory: layout, sequence numbers and crash recovery.

Layout: ``<spool>/<room_id>/<participant_id>/<source>/<seq:06d>.webm`` (``.webm.part`` while
open). After a kill -9 the open segments are left as ``.part`` files holding all but about their
last second (the recorder flushes a cluster every second); ``recover_spool`` turns the readable
ones into valid WebM files and discards the rest, so a broken file is never handed on.
Closed ``.webm`` files still in the spool (the domain had not taken them yet) are verified and
returned too: the domain ingests every returned segment idempotently (keyed by its path).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av

log = logging.getLogger("classguard.recorder")

STARTED_AT_TAG = "CLASSGUARD_STARTED_AT"
SEGMENT_SOURCES = ("mic", "screen", "snapshot")
_SEQ = re.compile(r"^(\d+)\.webm(\.part)?$")


def segment_dir(spool_dir: Path, room_id: uuid.UUID, participant_id: uuid.UUID, source: str) -> Path:
    return Path(spool_dir) / str(room_id) / str(participant_id) / source


def next_seq(directory: Path) -> int:
    """The next free sequence number in a segment directory (continues after a restart)."""
    highest = -1
    if directory.is_dir():
        for p in directory.iterdir():
            m = _SEQ.match(p.name)
            if m:
                highest = max(highest, int(m.group(1)))
    return highest + 1


@dataclass(frozen=True)
class RecoveredSegment:
    """A segment found in the spool at start-up, verified playable."""

    room_id: uuid.UUID
    participant_id: uuid.UUID
    source: str  # "mic" | "screen" | "snapshot"
    path: Path
    seq: int
    started_at: datetime
    ended_at: datetime
    duration: float
    packets: int
    recovered: bool  # True: finalised from a ``.part`` left by a crash


@dataclass
class _Probe:
    kind: str
    width: int | None
    height: int | None
    packets: list[tuple[bytes, int, bool]]  # (data, pts in ms, keyframe)
    started_at: datetime | None


def _probe(path: Path) -> _Probe:
    """Read every packet that demuxes and decodes, stopping at the first damaged one."""
    container: Any = av.open(str(path), format="webm")
    try:
        stream = container.streams[0]
        kind = stream.type
        tb = stream.time_base
        started_raw = container.metadata.get(STARTED_AT_TAG)
        started = datetime.fromisoformat(started_raw) if started_raw else None
        decoder: Any = av.CodecContext.create("libvpx" if stream.codec_context.name == "vp8" else "libopus", "r")
        packets: list[tuple[bytes, int, bool]] = []
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                data = bytes(pkt)
                decoder.decode(av.Packet(data))
                packets.append((data, int(pkt.pts * tb * 1000), bool(pkt.is_keyframe)))
        except (av.FFmpegError, ValueError, EOFError) as exc:
            log.info("stopped reading %s at packet %d: %s", path, len(packets), exc)
        width = stream.codec_context.width if kind == "video" else None
        height = stream.codec_context.height if kind == "video" else None
        return _Probe(kind, width, height, packets, started)
    finally:
        container.close()


def _parse_location(spool_dir: Path, path: Path) -> tuple[uuid.UUID, uuid.UUID, str, int] | None:
    try:
        rel = path.relative_to(spool_dir).parts
    except ValueError:
        return None
    if len(rel) != 4 or rel[2] not in SEGMENT_SOURCES:
        return None
    m = _SEQ.match(rel[3])
    if not m:
        return None
    try:
        return uuid.UUID(rel[0]), uuid.UUID(rel[1]), rel[2], int(m.group(1))
    except ValueError:
        return None


def _remux(probe: _Probe, target: Path, started_at: datetime) -> None:
    from classroom.recorder import WebmSegmentFile  # the recorder's own writer, same file shape

    tmp = target.with_name(target.name + ".recovering")
    out = WebmSegmentFile(tmp, probe.kind, started_at, probe.width, probe.height)
    last = -1
    for data, pts, key in probe.packets:
        pts = max(pts, last + 1)
        out.write(data, pts, key)
        last = pts
    out.close(target)


def _discard(path: Path, why: str) -> None:
    log.warning("discarding unrecoverable segment %s: %s", path, why)
    path.unlink(missing_ok=True)


def recover_spool(spool_dir: Path) -> list[RecoveredSegment]:
    """Finalise or discard every leftover ``.part`` and list the closed segments still spooled.

    Call at relay start-up, before new recording begins. Returns segments ordered by path.
    """
    spool_dir = Path(spool_dir)
    found: list[RecoveredSegment] = []
    if not spool_dir.is_dir():
        return found
    for stray in spool_dir.rglob("*.webm.recovering"):
        stray.unlink(missing_ok=True)  # a recovery interrupted last time; redo from the .part
    for path in sorted(spool_dir.rglob("*.webm*")):
        if not (path.name.endswith(".webm") or path.name.endswith(".webm.part")):
            continue
        loc = _parse_location(spool_dir, path)
        if loc is None:
            log.warning("ignoring unexpected file in the spool: %s", path)
            continue
        room_id, participant_id, source, seq = loc
        is_part = path.name.endswith(".part")
        try:
            probe = _probe(path)
        except Exception as exc:  # unreadable header, empty file, not WebM at all
            _discard(path, f"{type(exc).__name__}: {exc}")
            continue
        if not probe.packets:
            _discard(path, "no readable packets")
            continue
        if probe.kind == "video" and not probe.packets[0][2]:
            _discard(path, "does not start with a keyframe")
            continue
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        step = 0.02 if probe.kind == "audio" else (0.0 if len(probe.packets) == 1 else 1 / 30)
        duration = probe.packets[-1][1] / 1000 + step
        started = probe.started_at or (mtime - timedelta(seconds=duration))
        final = path.with_name(f"{seq:06d}.webm")
        if is_part:
            try:
                _remux(probe, final, started)
            except Exception as exc:
                _discard(path, f"remux failed: {exc}")
                final.with_name(final.name + ".recovering").unlink(missing_ok=True)
                continue
            path.unlink(missing_ok=True)
            log.info("recovered segment %s (%d packets, %.2f s)", final, len(probe.packets), duration)
        found.append(RecoveredSegment(
            room_id=room_id, participant_id=participant_id, source=source, path=final, seq=seq,
            started_at=started, ended_at=started + timedelta(seconds=duration), duration=round(duration, 3),
            packets=len(probe.packets), recovered=is_part,
        ))
    return found
