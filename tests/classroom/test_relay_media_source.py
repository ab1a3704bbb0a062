"""Fan-out rules of the encoded stream: keyframe gating, overflow, keyframe-request rate limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection

import classroom.media_source as media_source
from classroom.media_source import EncodedSource, MediaPacket, SubscriberTrack


@pytest.fixture
async def video_source() -> AsyncIterator[EncodedSource]:
    pc = RTCPeerConnection()
    source = EncodedSource("video", pc.addTransceiver("video", "recvonly").receiver)
    yield source
    await pc.close()


def pkt(i: int, keyframe: bool) -> MediaPacket:
    return MediaPacket("video", bytes([0 if keyframe else 1]) + b"x" * 20, i * 3000, 90000, keyframe, time.time())


async def test_a_new_subscriber_waits_for_a_keyframe(video_source: EncodedSource) -> None:
    track = SubscriberTrack("video")
    track.attach(video_source)
    for i in range(5):
        track.push(pkt(i, keyframe=False))
    assert track._queue.qsize() == 0
    track.push(pkt(5, keyframe=True))
    track.push(pkt(6, keyframe=False))
    first = await track.recv()
    second = await track.recv()
    assert bytes(first)[0] == 0 and bytes(second)[0] == 1
    assert (first.pts, second.pts) == (0, 3000)  # its own timeline starts at zero


async def test_overflow_drops_until_the_next_keyframe(video_source: EncodedSource) -> None:
    track = SubscriberTrack("video", max_queue=10)
    track.attach(video_source)
    track.push(pkt(0, keyframe=True))
    for i in range(1, 15):
        track.push(pkt(i, keyframe=False))  # nobody reads: the subscriber is too slow
    assert track.dropped_overflow == 10 and track._queue.qsize() == 0
    track.push(pkt(15, keyframe=False))
    assert track._queue.qsize() == 0
    track.push(pkt(16, keyframe=True))
    assert track._queue.qsize() == 1


async def test_keyframe_requests_are_rate_limited(video_source: EncodedSource,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[float] = []

    async def fake_pli(receiver: object) -> bool:
        sent.append(time.monotonic())
        return True

    monkeypatch.setattr(media_source, "request_keyframe", fake_pli)
    for _ in range(10):  # ten subscribers asking at once
        video_source.request_keyframe()
        await asyncio.sleep(0)
    await asyncio.sleep(media_source.KEYFRAME_REQUEST_INTERVAL + 0.05)
    video_source.request_keyframe()
    await asyncio.sleep(0.01)
    assert len(sent) == 2


async def test_switching_sources_keeps_the_subscriber_timeline_continuous(video_source: EncodedSource) -> None:
    pc = RTCPeerConnection()
    try:
        other = EncodedSource("video", pc.addTransceiver("video", "recvonly").receiver)
        track = SubscriberTrack("video")
        track.attach(video_source)
        track.push(pkt(100, keyframe=True))
        a = await track.recv()
        track.attach(other)
        track.push(pkt(7, keyframe=True))  # the new publisher's clock is unrelated
        b = await track.recv()
        assert a.pts is not None and b.pts == a.pts + 3000
    finally:
        await pc.close()
