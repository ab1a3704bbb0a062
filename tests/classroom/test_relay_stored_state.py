"""The relay's ``load_participant`` hook: what the domain stored about a participant (mutes, next
segment numbers) is applied on every connect before anything flows; a failing load refuses the
connection; a live (un)mute that lands while the load runs is newer and wins."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from classroom.bot import Bot
from classroom.media_source import EncodedSource
from classroom.relay import Relay, RelayCallbacks, StoredParticipant
from classroom.signaling import ChannelClosed, channel_pair

from .conftest import Events

pytestmark = pytest.mark.slow


async def _connect(relay: Relay, room: uuid.UUID, pid: uuid.UUID, name: str,
                   wait_welcome: bool = True) -> tuple[Bot, asyncio.Future[None]]:
    server_end, client_end = channel_pair()
    task = asyncio.ensure_future(relay.connect(room, pid, name, "student", server_end))
    bot = Bot(client_end, name=name)
    if wait_welcome:
        await bot.start()
    return bot, task


async def test_stored_mute_and_numbering_apply_before_any_packet(tmp_path: Path, events: Events) -> None:
    room, aid, bid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def load(room_id: uuid.UUID, participant_id: uuid.UUID) -> StoredParticipant:
        if participant_id == aid:
            return StoredParticipant(muted={"mic"}, next_seq={"mic": 7, "screen": 2})
        return StoredParticipant()

    callbacks = RelayCallbacks(events.on_segment_closed, events.on_source_changed, events.on_participant_left,
                               load_participant=load)
    relay = Relay(tmp_path / "spool", [], segment_seconds=1.0, snapshot_interval=0.0, callbacks=callbacks)
    a, a_task = await _connect(relay, room, aid, "A")
    b, b_task = await _connect(relay, room, bid, "B")
    try:
        await a.wait_for(lambda: any(m.get("type") == "muted" and m["source"] == "mic" and m["muted"]
                                     for m in a.messages))
        a.publish_mic()
        source = await _bound_mic(relay, room, aid)
        await a.wait_for(lambda: source.packets_dropped_closed > 50, 15)
        assert b.heard(str(aid), "mic") == 0 and events.of(aid, "mic") == []
        assert not any(pid == aid for (_, pid, *_rest) in events.changes)

        await relay.unmute(room, aid, "mic")
        await b.wait_for(lambda: b.heard(str(aid), "mic") > 60, 15)  # over a second: a boundary passed
        await a.leave()
        await asyncio.wait_for(a_task, 10)
        seqs = [s.seq for s in events.of(aid, "mic")]
        assert seqs and seqs == list(range(7, 7 + len(seqs))), seqs
    finally:
        await b.leave()
        await relay.close()
        await asyncio.gather(a_task, b_task, return_exceptions=True)


async def _bound_mic(relay: Relay, room: uuid.UUID, pid: uuid.UUID) -> EncodedSource:
    for _ in range(200):
        p = relay.rooms[room].participants.get(pid)
        if p is not None and p.sources["mic"].bound is not None:
            return p.sources["mic"].bound
        await asyncio.sleep(0.05)
    raise AssertionError("the mic was never bound")


async def test_a_failing_load_refuses_the_connection(tmp_path: Path) -> None:
    async def load(room_id: uuid.UUID, participant_id: uuid.UUID) -> StoredParticipant:
        raise RuntimeError("the database is down")

    relay = Relay(tmp_path / "spool", [], callbacks=RelayCallbacks(load_participant=load))
    room = uuid.uuid4()
    server_end, client_end = channel_pair()
    try:
        await asyncio.wait_for(relay.connect(room, uuid.uuid4(), "A", "student", server_end), 10)
        said = []
        with pytest.raises(ChannelClosed):
            while True:
                said.append(await asyncio.wait_for(client_end.receive(), 5))
        assert said == [{"type": "removed", "reason": "unavailable"}]  # no welcome, nothing else
        assert room not in relay.rooms
    finally:
        await relay.close()


async def test_a_live_unmute_during_the_load_wins(tmp_path: Path) -> None:
    room, pid = uuid.uuid4(), uuid.uuid4()
    loading, release = asyncio.Event(), asyncio.Event()

    async def load(room_id: uuid.UUID, participant_id: uuid.UUID) -> StoredParticipant:
        loading.set()
        await release.wait()
        return StoredParticipant(muted={"mic"})  # read before the unmute below was stored

    relay = Relay(tmp_path / "spool", [], callbacks=RelayCallbacks(load_participant=load))
    bot, task = await _connect(relay, room, pid, "A", wait_welcome=False)
    try:
        await asyncio.wait_for(loading.wait(), 10)
        await relay.unmute(room, pid, "mic")
        release.set()
        await bot.start()
        assert relay.participants(room)[0]["sources"]["mic"]["muted"] is False
        assert not any(m.get("type") == "muted" and m["muted"] for m in bot.messages)
    finally:
        await bot.leave()
        await relay.close()
        await asyncio.gather(task, return_exceptions=True)
