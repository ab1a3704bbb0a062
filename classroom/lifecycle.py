"""Start and stop the classroom's part of the process: the relay, its callbacks, crash recovery.

startup: build the ``Relay`` from settings into ``rt.extras["relay"]``; finalise or discard what a
crash left in the spool and turn every playable leftover into a slice (same path as a live
segment); close the stays and sources a dead process could not close. shutdown: close the relay,
so every open segment is finalised and stored before the database goes away.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from classroom import live, live_control, service
from classroom import repository as repo
from classroom.after_commit import drain
from classroom.placement import make_placement
from classroom.recorder import ClosedSegment
from classroom.relay import Relay, RelayCallbacks, StoredParticipant
from classroom.service import SegmentFacts
from classroom.spool import RecoveredSegment
from storage.db import unit_of_work
from storage.runtime import Runtime

log = logging.getLogger("classguard.classroom")


def spool_dir_of(rt: Runtime) -> Path:
    return rt.settings.data_dir / "spool"


async def ingest_segment(rt: Runtime, facts: SegmentFacts) -> uuid.UUID | None:
    """Turn one finished spool file into a slice (idempotent); remove the file once it is stored.

    If storing fails the exception propagates and the file stays in the spool, to be picked up
    by the next start's recovery.
    """
    try:
        async with unit_of_work(rt.sessionmaker) as session:
            row, outcome = await service.create_slice(session, rt.media, facts)
    except IntegrityError:
        # Announced twice at once (live callback and recovery): the other insert won.
        async with rt.sessionmaker() as session:
            row = await repo.find_slice(session, facts.room_id, facts.participant_id, facts.source, facts.seq)
        if row is None:
            raise
        outcome = "exists"
    if outcome == "discard":
        log.warning("discarding segment %s: no readable packets", facts.path)
    elif outcome == "cancelled-account":
        log.info("discarding segment %s: the account was cancelled (its recordings are deleted)", facts.path)
    elif outcome == "unknown-session":
        log.warning("discarding segment %s: no live session %s in the database", facts.path, facts.room_id)
    elif outcome == "created":
        log.info("slice %s: %s %s seq %d %.2fs (%s)", row.id if row else None, facts.participant_id,
                 facts.source, facts.seq, facts.duration, facts.close_reason)
    await asyncio.to_thread(facts.path.unlink, True)  # only after commit
    return row.id if row is not None else None


def _facts_from_closed(seg: ClosedSegment) -> SegmentFacts:
    return SegmentFacts(room_id=seg.room_id, participant_id=seg.participant_id, source=seg.source,
                        path=seg.path, seq=seg.seq, started_at=seg.started_at, ended_at=seg.ended_at,
                        duration=seg.duration, close_reason=seg.reason)


def _facts_from_recovered(seg: RecoveredSegment) -> SegmentFacts:
    return SegmentFacts(room_id=seg.room_id, participant_id=seg.participant_id, source=seg.source,
                        path=seg.path, seq=seg.seq, started_at=seg.started_at, ended_at=seg.ended_at,
                        duration=seg.duration, close_reason="crash-recovered" if seg.recovered else "spooled")


def make_callbacks(rt: Runtime) -> RelayCallbacks:
    """The relay's hooks into the database: slices, the consent/recording trail, stored mutes."""
    trail_lock = asyncio.Lock()  # the trail is written in the order the relay reports it

    async def on_segment_closed(seg: ClosedSegment) -> None:
        await ingest_segment(rt, _facts_from_closed(seg))

    async def on_source_changed(room_id: uuid.UUID, participant_id: uuid.UUID, source: str, enabled: bool,
                                at: datetime, by: str) -> None:
        who = live.attribution_for(room_id, participant_id) if by != "participant" else None
        by_user_id = who.by_user_id if who else None
        reason = who.reason if who else None
        if who is not None and who.by_user_id is None:
            by = "system"  # an automated enforcement, not a person
        async with trail_lock, unit_of_work(rt.sessionmaker) as session:
            if await repo.get_live_session(session, room_id) is None:
                log.warning("source change for unknown session %s ignored", room_id)
                return
            await service.record_source_change(session, room_id, participant_id, source, enabled, at, by,
                                               by_user_id, reason)

    async def on_participant_left(room_id: uuid.UUID, participant_id: uuid.UUID) -> None:
        # Each connection closes its own stay when it ends (``endpoints.attend``); closing "every
        # open stay of this user" here could close a reconnect's new stay by mistake.
        log.info("participant %s left session %s", participant_id, room_id)

    async def load_participant(room_id: uuid.UUID, participant_id: uuid.UUID) -> StoredParticipant:
        # The relay forgets a participant who leaves: on a rejoin the stored controls re-apply a
        # mute, and segment numbers continue after the slices already stored.
        async with rt.sessionmaker() as session:
            return StoredParticipant(muted=await service.muted_sources(session, room_id, participant_id),
                                     next_seq=await service.next_slice_seqs(session, room_id, participant_id))

    return RelayCallbacks(on_segment_closed=on_segment_closed, on_source_changed=on_source_changed,
                          on_participant_left=on_participant_left, load_participant=load_participant)


async def recover(rt: Runtime, relay: Relay) -> list[uuid.UUID]:
    """Finalise/discard spool leftovers of a crash and store the playable ones as slices."""
    found = await asyncio.to_thread(relay.recover)
    slice_ids: list[uuid.UUID] = []
    for seg in found:
        try:
            slice_id = await ingest_segment(rt, _facts_from_recovered(seg))
        except Exception:
            log.exception("could not store recovered segment %s; it stays in the spool", seg.path)
            continue
        if slice_id is not None:
            slice_ids.append(slice_id)
    if found:
        log.info("spool recovery: %d segments found, %d stored as slices", len(found), len(slice_ids))
    return slice_ids


async def startup(rt: Runtime) -> None:
    s = rt.settings
    relay = Relay(spool_dir_of(rt), s.ice_servers, segment_seconds=s.segment_seconds,
                  snapshot_interval=s.snapshot_interval_seconds, ice_timeout=s.ice_connect_timeout_seconds,
                  callbacks=make_callbacks(rt))
    await recover(rt, relay)
    async with unit_of_work(rt.sessionmaker) as session:
        await service.close_stale_state(session)
    placement = make_placement(s, load=lambda: len(relay.rooms))
    await placement.start()
    control = live_control.make_control(rt, relay)
    await control.start()
    rt.extras["placement"] = placement
    rt.extras["live_control"] = control
    rt.extras["relay"] = relay


async def shutdown(rt: Runtime) -> None:
    control: live_control.LiveControl | None = rt.extras.pop("live_control", None)
    if control is not None:
        await control.stop()
    relay: Relay | None = rt.extras.pop("relay", None)
    if relay is not None:
        await relay.close()
    placement = rt.extras.pop("placement", None)
    if placement is not None:
        await placement.stop()
    await drain()
