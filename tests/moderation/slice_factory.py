"""Factories for pipeline tests: a live class session and slices in it, made the way the classroom
makes them (``classroom.service.create_slice``: media stored, row inserted, pipeline announced in
one transaction), or — for media the recorder would never keep — inserted directly and announced."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from accounts.models import User
from classroom import service as classroom
from classroom.events import announce_slice_created
from classroom.models import Slice
from classroom.schemas import ClassIn
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import make_user

_seq = itertools.count(1)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Room:
    """A class with a live session; ``speaker`` is a user id that speaks in it."""

    class_id: uuid.UUID
    session_id: uuid.UUID
    teacher_id: uuid.UUID
    speakers: list[uuid.UUID] = field(default_factory=list)
    next_seq: dict[tuple[uuid.UUID, str], int] = field(default_factory=dict)
    clock: dict[tuple[uuid.UUID, str], datetime] = field(default_factory=dict)


async def live_room(students: int = 1) -> Room:
    """A teacher's class with a live session and ``students`` more users (speakers: teacher first)."""
    teacher = await make_user("teacher")
    others = [await make_user("student") for _ in range(students)]
    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as session:
        t = await session.get(User, uuid.UUID(teacher.id))
        assert t is not None
        cls = await classroom.create_class(session, t, ClassIn(title=f"Class {next(_seq)}"))
        live, _ = await classroom.start_session(session, cls, t)
    return Room(class_id=cls.id, session_id=live.id, teacher_id=t.id,
                speakers=[t.id, *[uuid.UUID(o.id) for o in others]])


def _times(room: Room, user_id: uuid.UUID, source: str, duration: float,
           started_at: datetime | None) -> tuple[int, datetime]:
    key = (user_id, source)
    seq = room.next_seq.get(key, 0)
    room.next_seq[key] = seq + 1
    start = started_at or room.clock.get(key, T0)
    room.clock[key] = start + timedelta(seconds=duration)
    return seq, start


async def add_slice(room: Room, path: Path, *, user_id: uuid.UUID | None = None, source: str = "mic",
                    duration: float = 10.0, started_at: datetime | None = None) -> uuid.UUID:
    """A slice through the classroom's own ``create_slice`` (consecutive per speaker and source)."""
    user = user_id or room.speakers[0]
    seq, start = _times(room, user, source, duration, started_at)
    facts = classroom.SegmentFacts(
        room_id=room.session_id, participant_id=user, source=source, path=path, seq=seq,
        started_at=start, ended_at=start + timedelta(seconds=duration), duration=duration, close_reason="rotate",
    )
    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as session:
        row, outcome = await classroom.create_slice(session, rt.media, facts)
    assert row is not None, outcome
    return row.id


async def add_raw_slice(room: Room, data: bytes, *, user_id: uuid.UUID | None = None, source: str = "mic",
                        duration: float = 10.0, content_type: str = "audio/webm",
                        announce: bool = True) -> uuid.UUID:
    """A slice row whose media is ``data`` as is (bad media the recorder would not keep, or a slice
    stored while the pipeline was not listening: ``announce=False``)."""
    user = user_id or room.speakers[0]
    seq, start = _times(room, user, source, duration, None)
    key = f"slices/{room.session_id}/{user}/{source}/{seq:06d}.webm"
    rt = get_runtime()
    await rt.media.put(key, data, content_type)
    async with unit_of_work(rt.sessionmaker) as session:
        row = Slice(session_id=room.session_id, class_id=room.class_id, user_id=user, source=source, media_key=key,
                    content_type=content_type, started_at=start, ended_at=start + timedelta(seconds=duration),
                    duration_s=duration, size_bytes=len(data), seq=seq, close_reason="rotate", status="pending")
        session.add(row)
        await session.flush()
        if announce:
            await announce_slice_created(session, row.id)
    return row.id
