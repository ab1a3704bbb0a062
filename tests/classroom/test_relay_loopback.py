"""Room life cycle over real aiortc loopback connections: reconnect, remove, ICE timeout,
renegotiation as sources come and go, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from classroom.bot import Bot
from classroom.relay import Relay
from classroom.signaling import channel_pair

from .conftest import Events, JoinFn


@pytest.mark.slow
async def test_reconnect_with_the_same_participant_id_keeps_the_room(
        relay: Relay, events: Events, join: JoinFn) -> None:
    room = uuid.uuid4()
    a = await join(room, "A")
    b = await join(room, "B")
    aid = str(a.participant_id)
    a.bot.publish_mic()
    await b.bot.wait_for(lambda: b.bot.heard(aid, "mic") > 20)

    # the same person comes back on a new connection (new tab, network change)
    a2 = await join(room, "A again", participant_id=a.participant_id)
    await asyncio.wait_for(a.task, 10)
    assert any(m == {"type": "removed", "reason": "replaced"} for m in a.bot.messages)
    assert [p["display_name"] for p in relay.participants(room)] == ["A again", "B"]
    assert events.left == []  # the participant never left the class
    # The old connection's socket closes before the server has finished closing its segment
    # (the write happens off the loop): wait for the segment, then check how it ended.
    for _ in range(100):
        if events.of(a.participant_id, "mic"):
            break
        await asyncio.sleep(0.1)
    first_session = events.of(a.participant_id, "mic")
    assert first_session and first_session[-1].reason == "left"

    heard = b.bot.heard(aid, "mic")
    a2.bot.publish_mic()
    await b.bot.wait_for(lambda: b.bot.heard(aid, "mic") > heard + 20)
    await a2.bot.leave()
    await asyncio.wait_for(a2.task, 10)
    assert events.left == [(room, a.participant_id)]
    seqs = [s.seq for s in events.of(a.participant_id, "mic")]
    assert seqs == sorted(set(seqs)), "sequence numbers continue across the reconnect"


@pytest.mark.slow
async def test_sources_added_later_and_new_publishers_renegotiate_subscribers(
        relay: Relay, join: JoinFn, screen_png: Path) -> None:
    room = uuid.uuid4()
    a = await join(room, "A")
    b = await join(room, "B")
    a.bot.publish_mic()
    aid = str(a.participant_id)
    await b.bot.wait_for(lambda: b.bot.heard(aid, "mic") > 10)
    offers_before = sum(m["type"] == "offer" for m in b.bot.messages)
    a.bot.share_screen(screen_png, fps=10)  # a new m-line in A's publish offer
    await b.bot.wait_for(lambda: b.bot.heard(aid, "screen") > 5)
    assert sum(m["type"] == "offer" for m in b.bot.messages) > offers_before
    assert b.bot.first_video_keyframe[(aid, "screen")]

    # A leaves; C arrives and publishes: B's freed transceivers are reused for C
    await a.bot.leave()
    await asyncio.wait_for(a.task, 10)
    c = await join(room, "C")
    cid = str(c.participant_id)
    c.bot.share_screen(screen_png, fps=10)
    await b.bot.wait_for(lambda: b.bot.heard(cid, "screen") > 5)
    # aiortc's jitter buffer at B releases A's last held frame when C's first packet arrives,
    # so on a reused transceiver C's stream is the second frame: it must open on a keyframe
    flags = b.bot.video_keyframe_flags[(cid, "screen")]
    assert flags[0] or flags[1], flags
    last_offer = [m for m in b.bot.messages if m["type"] == "offer"][-1]
    assert {t["participant_id"] for t in last_offer["tracks"].values()} == {cid}
    assert len(b.bot.subscribe_pc.getTransceivers()) == 2  # mic + screen m-lines, no growth


@pytest.mark.slow
async def test_remove_disconnects_one_participant(relay: Relay, events: Events, join: JoinFn) -> None:
    room = uuid.uuid4()
    a = await join(room, "A")
    b = await join(room, "B")
    b.bot.publish_mic()
    await a.bot.wait_for(lambda: a.bot.heard(str(b.participant_id), "mic") > 10)
    await relay.remove(room, b.participant_id)
    await asyncio.wait_for(b.task, 10)
    assert {"type": "removed", "reason": "removed"} in b.bot.messages
    assert [p["participant_id"] for p in relay.participants(room)] == [str(a.participant_id)]
    assert events.left == [(room, b.participant_id)]
    assert events.of(b.participant_id, "mic")[-1].reason == "left"
    await a.bot.wait_for(lambda: len(a.bot.participants) == 1)


async def test_a_participant_whose_ice_never_completes_is_dropped(tmp_path: Path, events: Events) -> None:
    relay = Relay(tmp_path / "spool", [], ice_timeout=1.5, callbacks=events.callbacks())
    room, pid = uuid.uuid4(), uuid.uuid4()
    server, client = channel_pair()
    task = asyncio.ensure_future(relay.connect(room, pid, "Ghost", "student", server))
    assert (await client.receive())["type"] == "welcome"
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), "sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()  # its ICE agent is gone: connectivity checks will never be answered
    await client.send({"type": "offer", "sdp": offer})
    await asyncio.wait_for(task, 15)
    removed = [m for m in client._inbox._queue if m and m.get("type") == "removed"]  # type: ignore[attr-defined]
    assert removed and removed[0]["reason"] in ("ice-timeout", "connection-failed")
    assert relay.participants(room) == [] and events.left == [(room, pid)]
    await relay.close()


@pytest.mark.slow
async def test_shutdown_closes_every_open_segment(tmp_path: Path, events: Events) -> None:
    relay = Relay(tmp_path / "spool", [], segment_seconds=30, callbacks=events.callbacks())
    room, pid = uuid.uuid4(), uuid.uuid4()
    server, client = channel_pair()
    task = asyncio.ensure_future(relay.connect(room, pid, "A", "teacher", server))
    bot = await Bot(client, name="A").start()
    bot.publish_mic()
    await bot.wait_for(lambda: relay.participants(room) and relay.participants(room)[0]["recording"])
    await asyncio.sleep(1.0)
    await relay.close()
    await asyncio.wait_for(task, 10)
    segs = events.of(pid, "mic")
    assert len(segs) == 1 and segs[0].reason == "ended" and segs[0].path.exists() and segs[0].duration > 0.5
    assert {"type": "removed", "reason": "shutdown"} in bot.messages
    await bot.close()
