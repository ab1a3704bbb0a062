"""Privacy promise 1 end to end over WebRTC: mic and screen are recorded only while on.

Bots join over in-memory signaling channels and real aiortc peer connections (loopback).
Schedules are the issue's (mic 0–6 s and 10–16 s) scaled down: on 0–3 s, off 3–5 s, on 5–8 s.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from pathlib import Path

import av
import pytest

from classroom.recorder import ClosedSegment
from classroom.relay import Relay

from .conftest import Events, JoinFn

TOLERANCE = 0.7  # connection setup and the renegotiation round trip


def wall(bot_started_monotonic: float) -> float:
    """The wall-clock time at which a bot's schedule clock read zero."""
    return time.time() - (time.monotonic() - bot_started_monotonic)


def offsets(seg: ClosedSegment, t0: float) -> tuple[float, float]:
    return seg.started_at.timestamp() - t0, seg.ended_at.timestamp() - t0


def inside(seg: ClosedSegment, t0: float, windows: list[tuple[float, float]]) -> bool:
    start, end = offsets(seg, t0)
    return any(a - TOLERANCE <= start and end <= b + TOLERANCE for a, b in windows)


def first_packet_and_frames(path: Path) -> tuple[bool, int, int]:
    with av.open(str(path)) as c:
        pkts = [p for p in c.demux() if p.size]
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(c.streams[0]))
    return pkts[0].is_keyframe, len(pkts), frames


async def sleep_until(t0: float, offset: float) -> None:
    await asyncio.sleep(max(0.0, t0 + offset - time.time()))


@pytest.mark.slow
async def test_recorded_only_while_on_and_a_lying_client_is_not_recorded(
        relay: Relay, events: Events, join: JoinFn, screen_png: Path, voice_wav: Path) -> None:
    room = uuid.uuid4()
    a = await join(room, "Teacher A", role="teacher")
    b = await join(room, "Student B")
    c = await join(room, "Liar C")
    a.bot.publish_mic([(0, 3), (5, None)], voice_wav)
    a.bot.share_screen(screen_png, [(0.5, None)])
    a.bot.publish_camera([(0, None)], 320, 240, 10)
    # C switches its mic "off" at 2 s but keeps its transceiver sending audio
    c.bot.publish_mic([(0, 2)], misbehave=True)
    t0a, t0c = wall(a.bot.started_at), wall(c.bot.started_at)

    await sleep_until(t0c, 2.6)
    c_heard_before = b.bot.heard(str(c.participant_id), "mic")
    await sleep_until(t0c, 4.6)
    c_state = relay.rooms[room].participants[c.participant_id].sources["mic"]
    assert c_state.bound is not None and c_state.bound.packets_dropped_closed > 50, "C really kept sending"
    assert b.bot.heard(str(c.participant_id), "mic") - c_heard_before <= 5, "declared-off audio is not forwarded"

    await sleep_until(t0a, 8.0)
    await a.bot.leave()  # mid-segment: the last one must still be closed and playable
    await c.bot.leave()
    await asyncio.wait_for(asyncio.gather(a.task, c.task), 15)

    # B heard and saw A (forwarding), every video stream to B began with a keyframe
    aid = str(a.participant_id)
    assert b.bot.heard(aid, "mic") > 150 and b.bot.heard(aid, "screen") > 10 and b.bot.heard(aid, "camera") > 20
    assert b.bot.first_video_keyframe[(aid, "screen")] and b.bot.first_video_keyframe[(aid, "camera")]

    # A's mic: segments only inside the on-intervals, about as long as the on-time, all playable
    mic = events.of(a.participant_id, "mic")
    windows = [(0.0, 3.0), (5.0, 8.0)]
    assert mic and all(inside(s, t0a, windows) for s in mic), [offsets(s, t0a) for s in mic]
    assert not any(3.0 + TOLERANCE < offsets(s, t0a)[1] and offsets(s, t0a)[0] < 5.0 - TOLERANCE for s in mic)
    total = sum(s.duration for s in mic)
    assert 6.0 - 2 * TOLERANCE <= total <= 6.0 + 0.3, total
    assert mic[-1].reason == "left" and "disabled" in [s.reason for s in mic]
    for s in mic:
        _, packets, frames = first_packet_and_frames(s.path)
        assert packets > 0 and frames > 0
        assert s.duration == pytest.approx(packets * 0.02, abs=0.1)

    # A's screen: rolling segments, each starting with a keyframe and decodable on its own
    screen = events.of(a.participant_id, "screen")
    assert len(screen) >= 2 and screen[-1].reason == "left"
    for s in screen:
        keyframe, packets, frames = first_packet_and_frames(s.path)
        assert keyframe and frames == packets
    assert all(inside(s, t0a, [(0.5, 8.0)]) for s in screen)

    # camera is never recorded, only keyframe snapshots
    snaps = events.of(a.participant_id, "snapshot")
    assert len(snaps) >= 3
    assert all(first_packet_and_frames(s.path)[1:] == (1, 1) for s in snaps)

    # the liar: nothing after its declared "off" at 2 s
    c_mic = events.of(c.participant_id, "mic")
    assert c_mic and all(inside(s, t0c, [(0.0, 2.0)]) for s in c_mic), [offsets(s, t0c) for s in c_mic]
    assert sum(s.duration for s in c_mic) <= 2.0 + 0.3

    # the domain heard every switch, and everyone saw the recording indicator change
    a_mic_changes = [(enabled, by) for (_, pid, src, enabled, _, by) in events.changes
                     if pid == a.participant_id and src == "mic"]
    assert a_mic_changes == [(True, "participant"), (False, "participant"), (True, "participant"),
                             (False, "system")]
    indicator = [m["recording"] for m in b.bot.messages
                 if m["type"] == "source_state" and m["participant_id"] == aid and m["source"] == "mic"]
    assert indicator == [True, False, True, False]
    assert (room, a.participant_id) in events.left and (room, c.participant_id) in events.left


@pytest.mark.slow
async def test_moderator_mute_stops_forwarding_and_recording_at_once(
        relay: Relay, events: Events, join: JoinFn) -> None:
    room = uuid.uuid4()
    a = await join(room, "A")
    b = await join(room, "B")
    a.bot.publish_mic()
    aid = str(a.participant_id)
    await b.bot.wait_for(lambda: b.bot.heard(aid, "mic") > 30)

    muted_at = datetime.now().astimezone()
    await relay.mute(room, a.participant_id, "mic")
    await a.bot.wait_for(lambda: any(m["type"] == "muted" and m["muted"] for m in a.bot.messages))
    await asyncio.sleep(0.3)
    heard = b.bot.heard(aid, "mic")
    segments_at_mute = list(events.of(a.participant_id, "mic"))
    await asyncio.sleep(1.5)
    assert b.bot.heard(aid, "mic") - heard <= 3
    assert events.of(a.participant_id, "mic") == segments_at_mute
    assert segments_at_mute[-1].reason == "muted"
    assert segments_at_mute[-1].ended_at.timestamp() <= muted_at.timestamp() + 0.1
    state = relay.participants(room)
    mine = next(p for p in state if p["participant_id"] == aid)
    assert mine["sources"]["mic"]["muted"] and not mine["recording"]

    await relay.unmute(room, a.participant_id, "mic")
    await b.bot.wait_for(lambda: b.bot.heard(aid, "mic") - heard > 30)
    await relay.end_room(room)
    await asyncio.wait_for(asyncio.gather(a.task, b.task), 10)
    mic = events.of(a.participant_id, "mic")
    assert mic[-1].reason == "ended" and mic[-1].started_at.timestamp() > muted_at.timestamp() + 1.5
    assert a.bot.ended.is_set() and any(m["type"] == "ended" for m in b.bot.messages)
    assert room not in relay.rooms
    assert {pid for _, pid in events.left} == {a.participant_id, b.participant_id}
    by = [(enabled, who) for (_, pid, src, enabled, _, who) in events.changes if src == "mic"]
    assert by == [(True, "participant"), (False, "moderator"), (True, "moderator"), (False, "system")]
