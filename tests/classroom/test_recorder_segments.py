"""The recorder on its own: real VP8/Opus packets pushed as the relay would push them."""

from __future__ import annotations

import fractions
import logging
import time
import uuid
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection

from classroom.media_source import EncodedSource, MediaPacket
from classroom.recorder import ClosedSegment, SegmentAnnouncer, SourceRecorder

from .conftest import Events


def vp8_frames(n: int, gop: int = 30, size: tuple[int, int] = (320, 240)) -> list[bytes]:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = size
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.gop_size = gop
    codec.options = {"deadline": "realtime", "cpu-used": "8", "keyint_min": str(gop)}
    out: list[bytes] = []
    for i in range(n):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[:, (i * 7) % size[0]] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in codec.encode(frame)]
    return out


def opus_frames(n: int) -> list[bytes]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48000, "stereo", "s16"
    codec.time_base = fractions.Fraction(1, 48000)
    out: list[bytes] = []
    for i in range(n + 2):
        samples = (np.sin(np.arange(960) / 10) * 5000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(samples, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [bytes(p) for p in codec.encode(frame)]
    return out[:n]


def packets(kind: str, frames: list[bytes], t0: float) -> list[MediaPacket]:
    from classroom.encoded import vp8_is_keyframe

    step, clock = (960, 48000) if kind == "audio" else (3000, 90000)
    return [MediaPacket(kind, d, i * step, clock, kind == "audio" or vp8_is_keyframe(d), t0 + i * step / clock)
            for i, d in enumerate(frames)]


def demux(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as c:
        return [p for p in c.demux() if p.size]


def decodes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams[0]))


def recorder(tmp_path: Path, events: Events, source: str = "screen", seconds: float = 1.0,
             keyframes: list[int] | None = None) -> SourceRecorder:
    return SourceRecorder(room_id=uuid.uuid4(), participant_id=uuid.uuid4(), source=source,  # type: ignore[arg-type]
                          spool_dir=tmp_path / "spool", segment_seconds=seconds,
                          announcer=SegmentAnnouncer(events.on_segment_closed),
                          request_keyframe=(lambda: keyframes.append(1)) if keyframes is not None else None)


async def test_video_segments_start_on_keyframes_and_play_alone(tmp_path: Path, events: Events) -> None:
    frames = vp8_frames(100, gop=15)
    keyframe_requests: list[int] = []
    rec = recorder(tmp_path, events, keyframes=keyframe_requests)
    rec.enable()
    pkts = packets("video", frames, time.time())
    for p in pkts[5:]:  # join mid-GOP: inter frames before the first keyframe are not written
        rec.push(p)
    await rec.aclose("left")
    segs = sorted(events.segments, key=lambda s: s.seq)
    assert [s.reason for s in segs] == ["boundary"] * (len(segs) - 1) + ["left"]
    assert len(segs) >= 3
    assert keyframe_requests, "a PLI is requested when a segment must start on a keyframe"
    written = 0
    for seg in segs:
        assert seg.path.suffix == ".webm" and seg.path.exists()
        assert not seg.path.with_name(seg.path.name + ".part").exists()
        got = demux(seg.path)
        assert got[0].is_keyframe
        assert decodes(seg.path) == len(got)
        written += len(got)
        assert seg.started_at <= seg.ended_at
    assert written == len(pkts) - 15  # everything from the first keyframe (frame 15) on
    assert segs[0].duration == pytest.approx(1.0, abs=0.05)  # cut at the first keyframe ≥ 1 s


async def test_packets_pushed_while_disabled_never_reach_a_file(tmp_path: Path, events: Events) -> None:
    frames = opus_frames(150)
    rec = recorder(tmp_path, events, source="mic", seconds=10)
    pkts = packets("audio", frames, time.time())
    rec.enable()
    for p in pkts[:50]:
        rec.push(p)
    rec.disable("disabled")
    for p in pkts[50:100]:
        rec.push(p)  # a client that lies about being off still pushes; nothing is written
    rec.enable()
    for p in pkts[100:]:
        rec.push(p)
    await rec.aclose("ended")
    segs = sorted(events.segments, key=lambda s: s.seq)
    assert [s.reason for s in segs] == ["disabled", "ended"]
    assert rec.dropped_while_off == 50
    assert [len(demux(s.path)) for s in segs] == [50, 50]
    assert segs[0].ended_at < segs[1].started_at
    assert segs[0].duration == pytest.approx(1.0, abs=0.03)
    for s in segs:
        with av.open(str(s.path)) as c:
            assert c.streams.audio[0].codec_context.name == "opus"
            assert sum(f.samples for f in c.decode(audio=0)) >= 48000 * 0.9


async def test_a_failing_callback_loses_no_segment(tmp_path: Path, events: Events,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    events.fail_segments = True
    rec = recorder(tmp_path, events, source="mic", seconds=0.5)
    rec.enable()
    with caplog.at_level(logging.ERROR, "classguard.recorder"):
        for p in packets("audio", opus_frames(60), time.time()):
            rec.push(p)
        await rec.aclose("left")
    assert len(events.segments) == 3
    assert all(s.path.exists() for s in events.segments), "the spool keeps what the domain did not take"
    assert "on_segment_closed failed" in caplog.text


async def test_encoded_source_guards_timestamp_jumps() -> None:
    pc = RTCPeerConnection()
    try:
        source = EncodedSource("audio", pc.addTransceiver("audio", "recvonly").receiver)
        t = 1000.0
        outs = [source._guard_pts(ts, t + i * 0.02) for i, ts in enumerate([5000, 5960, 6920])]
        # publisher restart: aiortc's TimestampMapper jumps by 2**32 — the timeline must not
        outs.append(source._guard_pts(6920 + 2**32, t + 0.06))
        outs.append(source._guard_pts(6920 + 2**32 + 960, t + 0.08))
        outs.append(source._guard_pts(100, t + 0.10))  # and backwards
        assert outs == [0, 960, 1920, 2880, 3840, 4800]
        # a real pause (two seconds without packets) keeps its length
        assert source._guard_pts(100 + 2 * 48000, t + 2.1) == 4800 + 2 * 48000
    finally:
        await pc.close()


def _unused(seg: ClosedSegment) -> None:  # keeps the import for type readers
    return None
