"""Crash recovery: leftover ``.part`` files are finalised into playable WebM or discarded."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from classroom.recorder import WebmSegmentFile
from classroom.spool import next_seq, recover_spool, segment_dir

from .test_recorder_segments import opus_frames, vp8_frames

ROOT = Path(__file__).resolve().parents[2]
STARTED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def _write(path: Path, kind: str, frames: list[bytes], close: bool) -> None:
    from classroom.encoded import vp8_is_keyframe

    f = WebmSegmentFile(path, kind, STARTED, 320 if kind == "video" else None, 240 if kind == "video" else None)
    step = 20 if kind == "audio" else 33
    for i, data in enumerate(frames):
        f.write(data, i * step, kind == "audio" or vp8_is_keyframe(data))
    if close:
        f.close(path)


def _decodes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams[0]))


def test_truncated_part_is_finalised_into_a_playable_segment(tmp_path: Path) -> None:
    room, who = uuid.uuid4(), uuid.uuid4()
    part = segment_dir(tmp_path, room, who, "screen") / "000004.webm.part"
    _write(part, "video", vp8_frames(90, gop=30), close=True)
    size = part.stat().st_size
    with part.open("r+b") as fh:
        fh.truncate(size * 2 // 3)  # the tail never reached the disk
    found = recover_spool(tmp_path)
    assert len(found) == 1
    seg = found[0]
    assert (seg.room_id, seg.participant_id, seg.source, seg.seq, seg.recovered) == (room, who, "screen", 4, True)
    assert seg.path == part.with_name("000004.webm") and seg.path.exists() and not part.exists()
    assert 10 < seg.packets < 90
    assert seg.started_at == STARTED and seg.duration > 0.3
    assert _decodes(seg.path) == seg.packets
    with av.open(str(seg.path)) as c:
        assert c.duration is not None and c.duration > 0
    assert next_seq(part.parent) == 5


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_an_open_segment_reaches_the_disk_every_second(tmp_path: Path, kind: str) -> None:
    """What a kill -9 leaves: the bytes of a file that was never closed (no trailer, no final
    flush). The writer closes a cluster about every second and flushes it, so all but the last
    second of the open segment is on disk and recovers."""
    spool = tmp_path / "spool"
    part = segment_dir(spool, uuid.uuid4(), uuid.uuid4(), "mic" if kind == "audio" else "screen") / "000000.webm.part"
    frames = opus_frames(200) if kind == "audio" else vp8_frames(120, gop=30)  # 4 s either way
    f = WebmSegmentFile(part, kind, STARTED, 320 if kind == "video" else None, 240 if kind == "video" else None)
    step = 20 if kind == "audio" else 33
    from classroom.encoded import vp8_is_keyframe

    for i, data in enumerate(frames):
        f.write(data, i * step, kind == "audio" or vp8_is_keyframe(data))
    on_disk = part.read_bytes()  # the file as the killed process would leave it
    f.close(tmp_path / "closed.webm")
    part.write_bytes(on_disk)
    found = recover_spool(spool)
    assert len(found) == 1 and found[0].recovered
    assert 2.5 <= found[0].duration <= 4.0, found[0]
    assert _decodes(found[0].path) == found[0].packets


def test_unrecoverable_parts_are_discarded_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = segment_dir(tmp_path, uuid.uuid4(), uuid.uuid4(), "mic")
    base.mkdir(parents=True)
    (base / "000000.webm.part").write_bytes(b"")
    (base / "000001.webm.part").write_bytes(os.urandom(5000))
    header_only = base / "000002.webm.part"
    _write(header_only, "audio", opus_frames(40), close=True)
    with header_only.open("r+b") as fh:
        fh.truncate(200)  # just the EBML header: no packet survives
    with caplog.at_level(logging.WARNING, "classguard.recorder"):
        assert recover_spool(tmp_path) == []
    assert caplog.text.count("discarding unrecoverable segment") == 3
    assert not any(base.iterdir())


def test_closed_segments_left_in_the_spool_are_listed_once_verified(tmp_path: Path) -> None:
    base = segment_dir(tmp_path, uuid.uuid4(), uuid.uuid4(), "mic")
    done = base / "000000.webm"
    _write(done, "audio", opus_frames(50), close=True)
    found = recover_spool(tmp_path)
    assert [(s.path, s.recovered, s.packets) for s in found] == [(done, False, 50)]
    assert found[0].duration == pytest.approx(1.0, abs=0.03)


_WRITER = """
import fractions, sys, time
from datetime import UTC, datetime
from pathlib import Path
import av, numpy as np
from classroom.encoded import vp8_is_keyframe
from classroom.recorder import WebmSegmentFile
codec = av.CodecContext.create("libvpx", "w")
codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
codec.time_base, codec.gop_size = fractions.Fraction(1, 30), 30
codec.options = {"deadline": "realtime", "cpu-used": "8", "b": "2M"}
rng = np.random.default_rng(1)
f = WebmSegmentFile(Path(sys.argv[1]), "video", datetime.now(UTC), 320, 240)
for i in range(100000):
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    frame.pts = i
    for p in codec.encode(frame):
        d = bytes(p)
        f.write(d, i * 33, vp8_is_keyframe(d))
"""


@pytest.mark.slow
def test_segment_of_a_killed_writer_is_recovered(tmp_path: Path) -> None:
    part = segment_dir(tmp_path, uuid.uuid4(), uuid.uuid4(), "screen") / "000000.webm.part"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(part)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size > 200_000):
            assert proc.poll() is None, "writer died on its own"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # kill -9: no trailer, no cues, no final flush
        proc.wait()
    found = recover_spool(tmp_path)
    assert len(found) == 1 and found[0].recovered
    assert found[0].packets > 5 and _decodes(found[0].path) == found[0].packets
    assert abs((found[0].started_at - datetime.now(UTC)).total_seconds()) < 120
