"""All SQL of the classroom domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from classroom.models import (
    Class,
    ControlAction,
    ControlEvent,
    Enrollment,
    JoinTicket,
    LiveSession,
    Participant,
    RecordingEvent,
    SessionStatus,
    Slice,
)

Row = Class | ControlEvent | Enrollment | JoinTicket | LiveSession | Participant | RecordingEvent | Slice


async def add(session: AsyncSession, obj: Row) -> None:
    session.add(obj)
    await session.flush()


# --- classes and enrollment ---------------------------------------------------------------------


async def get_class(session: AsyncSession, class_id: uuid.UUID) -> Class | None:
    return await session.get(Class, class_id)


async def classes_of_teacher(session: AsyncSession, teacher_id: uuid.UUID, limit: int, offset: int) -> list[Class]:
    q = (select(Class).where(Class.teacher_id == teacher_id)
         .order_by(Class.scheduled_start.desc().nulls_last(), Class.created_at.desc()).limit(limit).offset(offset))
    return list((await session.scalars(q)).all())


async def classes_of_student(session: AsyncSession, student_id: uuid.UUID, limit: int, offset: int) -> list[Class]:
    q = (select(Class).join(Enrollment, Enrollment.class_id == Class.id)
         .where(Enrollment.student_id == student_id)
         .order_by(Class.scheduled_start.desc().nulls_last(), Class.created_at.desc()).limit(limit).offset(offset))
    return list((await session.scalars(q)).all())


async def all_classes(session: AsyncSession, limit: int, offset: int) -> list[Class]:
    q = select(Class).order_by(Class.created_at.desc()).limit(limit).offset(offset)
    return list((await session.scalars(q)).all())


async def get_enrollment(session: AsyncSession, class_id: uuid.UUID, student_id: uuid.UUID) -> Enrollment | None:
    q = select(Enrollment).where(Enrollment.class_id == class_id, Enrollment.student_id == student_id)
    return (await session.scalars(q)).first()


async def enrollments_of_class(session: AsyncSession, class_id: uuid.UUID) -> list[Enrollment]:
    q = select(Enrollment).where(Enrollment.class_id == class_id).order_by(Enrollment.created_at)
    return list((await session.scalars(q)).all())


# --- live sessions ---------------------------------------------------------------------------------


async def add_live_session(session: AsyncSession, row: LiveSession) -> bool:
    """Insert a live session in a SAVEPOINT; False (and the transaction still usable) if the
    database refused it, e.g. the class's one-live-session index because a concurrent request
    started one first."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def get_live_session(session: AsyncSession, session_id: uuid.UUID) -> LiveSession | None:
    return await session.get(LiveSession, session_id)


async def live_session_of_class(session: AsyncSession, class_id: uuid.UUID) -> LiveSession | None:
    q = select(LiveSession).where(LiveSession.class_id == class_id, LiveSession.status == SessionStatus.live.value)
    return (await session.scalars(q)).first()


async def live_sessions_of_classes(session: AsyncSession, class_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """class id → id of its live session, for the classes that have one."""
    if not class_ids:
        return {}
    q = select(LiveSession.class_id, LiveSession.id).where(
        LiveSession.class_id.in_(list(class_ids)), LiveSession.status == SessionStatus.live.value)
    return {row[0]: row[1] for row in (await session.execute(q)).all()}


async def all_live_sessions(session: AsyncSession) -> list[LiveSession]:
    q = select(LiveSession).where(LiveSession.status == SessionStatus.live.value)
    return list((await session.scalars(q)).all())


# --- participants ----------------------------------------------------------------------------------


async def open_participations(session: AsyncSession, session_id: uuid.UUID,
                              user_id: uuid.UUID | None = None) -> list[Participant]:
    q = select(Participant).where(Participant.session_id == session_id, Participant.left_at.is_(None))
    if user_id is not None:
        q = q.where(Participant.user_id == user_id)
    return list((await session.scalars(q.order_by(Participant.joined_at))).all())


async def participations(session: AsyncSession, session_id: uuid.UUID) -> list[Participant]:
    q = select(Participant).where(Participant.session_id == session_id).order_by(Participant.joined_at)
    return list((await session.scalars(q)).all())


async def close_open_participations(session: AsyncSession, session_id: uuid.UUID | None, at: datetime,
                                    reason: str) -> int:
    """Mark every open stay (of one session, or of all sessions) as left."""
    q = update(Participant).where(Participant.left_at.is_(None))
    if session_id is not None:
        q = q.where(Participant.session_id == session_id)
    result = await session.execute(q.values(left_at=at, left_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)


# --- recording events ------------------------------------------------------------------------------


async def recording_events(session: AsyncSession, session_id: uuid.UUID,
                           user_id: uuid.UUID | None = None) -> list[RecordingEvent]:
    q = select(RecordingEvent).where(RecordingEvent.session_id == session_id)
    if user_id is not None:
        q = q.where(RecordingEvent.user_id == user_id)
    return list((await session.scalars(q.order_by(RecordingEvent.at, RecordingEvent.id))).all())


async def last_recording_event(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID,
                               source: str) -> RecordingEvent | None:
    q = (select(RecordingEvent)
         .where(RecordingEvent.session_id == session_id, RecordingEvent.user_id == user_id,
                RecordingEvent.source == source)
         .order_by(RecordingEvent.at.desc(), RecordingEvent.id.desc()).limit(1))
    return (await session.scalars(q)).first()


async def sources_on(session: AsyncSession, session_id: uuid.UUID,
                     user_id: uuid.UUID | None = None) -> list[tuple[uuid.UUID, str]]:
    """(user, source) pairs whose latest recording event in the session says "on"."""
    events = await recording_events(session, session_id, user_id)
    latest: dict[tuple[uuid.UUID, str], bool] = {}
    for ev in events:  # ordered by time: the last one wins
        latest[(ev.user_id, ev.source)] = ev.enabled
    return [key for key, on in latest.items() if on]


# --- moderation controls -----------------------------------------------------------------------------


async def control_events(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID | None = None,
                         actions: Sequence[str] | None = None) -> list[ControlEvent]:
    """Controls applied in a session (to one user, of some actions), oldest first."""
    q = select(ControlEvent).where(ControlEvent.session_id == session_id)
    if user_id is not None:
        q = q.where(ControlEvent.user_id == user_id)
    if actions is not None:
        q = q.where(ControlEvent.action.in_(list(actions)))
    return list((await session.scalars(q.order_by(ControlEvent.at, ControlEvent.id))).all())


async def muted_sources(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> set[str]:
    """Sources of the user whose latest mute/unmute in the session is a mute."""
    latest: dict[str, bool] = {}
    for ev in await control_events(session, session_id, user_id, (ControlAction.mute, ControlAction.unmute)):
        if ev.source is not None:
            latest[ev.source] = ev.action == ControlAction.mute.value
    return {source for source, muted in latest.items() if muted}


async def last_removal_control(session: AsyncSession, session_id: uuid.UUID,
                               user_id: uuid.UUID) -> ControlEvent | None:
    """The user's latest remove or readmit in the session."""
    q = (select(ControlEvent)
         .where(ControlEvent.session_id == session_id, ControlEvent.user_id == user_id,
                ControlEvent.action.in_([ControlAction.remove.value, ControlAction.readmit.value]))
         .order_by(ControlEvent.at.desc(), ControlEvent.id.desc()).limit(1))
    return (await session.scalars(q)).first()


async def control_events_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[ControlEvent]:
    q = select(ControlEvent).where(ControlEvent.user_id == user_id).order_by(ControlEvent.at)
    return list((await session.scalars(q)).all())


# --- slices ------------------------------------------------------------------------------------------


async def get_slice(session: AsyncSession, slice_id: uuid.UUID) -> Slice | None:
    return await session.get(Slice, slice_id)


async def find_slice(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, source: str,
                     seq: int) -> Slice | None:
    q = select(Slice).where(Slice.session_id == session_id, Slice.user_id == user_id, Slice.source == source,
                            Slice.seq == seq)
    return (await session.scalars(q)).first()


async def highest_slice_seqs(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, int]:
    """source → the highest ``seq`` among the user's slices in the session."""
    q = (select(Slice.source, func.max(Slice.seq))
         .where(Slice.session_id == session_id, Slice.user_id == user_id).group_by(Slice.source))
    return {row[0]: int(row[1]) for row in (await session.execute(q)).all()}


async def list_slices(session: AsyncSession, *, session_id: uuid.UUID | None = None,
                      class_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None,
                      source: str | None = None, status: str | None = None,
                      limit: int = 100, offset: int = 0) -> list[Slice]:
    q = select(Slice)
    if session_id is not None:
        q = q.where(Slice.session_id == session_id)
    if class_id is not None:
        q = q.where(Slice.class_id == class_id)
    if user_id is not None:
        q = q.where(Slice.user_id == user_id)
    if source is not None:
        q = q.where(Slice.source == source)
    if status is not None:
        q = q.where(Slice.status == status)
    q = q.order_by(Slice.started_at, Slice.source, Slice.seq).limit(limit).offset(offset)
    return list((await session.scalars(q)).all())


async def count_unfinished_slices(session: AsyncSession, session_ids: Sequence[uuid.UUID]) -> int:
    """Slices of these sessions the pipeline has not finished (status pending or processing)."""
    q = select(func.count()).select_from(Slice).where(
        Slice.session_id.in_(list(session_ids)),
        or_(Slice.status == "pending", Slice.status == "processing"))
    return int((await session.scalar(q)) or 0)


# --- retention, cancellation and export (privacy promises 4–6) -------------------------------------


async def expired_slices(session: AsyncSession, older_than: datetime, limit: int) -> list[Slice]:
    """Slices whose media is past retention, not on legal hold and not yet deleted (oldest first)."""
    q = (select(Slice)
         .where(Slice.created_at < older_than, Slice.media_deleted_at.is_(None), Slice.legal_hold.is_(False))
         .order_by(Slice.created_at, Slice.id).limit(limit))
    return list((await session.scalars(q)).all())


async def mark_media_deleted(session: AsyncSession, slice_ids: Sequence[uuid.UUID], at: datetime) -> None:
    await session.execute(update(Slice).where(Slice.id.in_(list(slice_ids))).values(media_deleted_at=at))


async def slices_with_media_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[Slice]:
    q = select(Slice).where(Slice.user_id == user_id, Slice.media_deleted_at.is_(None)).order_by(Slice.created_at)
    return list((await session.scalars(q)).all())


async def taught_classes(session: AsyncSession, user_id: uuid.UUID) -> list[Class]:
    return list((await session.scalars(select(Class).where(Class.teacher_id == user_id))).all())


async def enrollments_of_student(session: AsyncSession, user_id: uuid.UUID) -> list[Enrollment]:
    return list((await session.scalars(select(Enrollment).where(Enrollment.student_id == user_id))).all())


async def participations_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[Participant]:
    q = select(Participant).where(Participant.user_id == user_id).order_by(Participant.joined_at)
    return list((await session.scalars(q)).all())


async def recording_events_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[RecordingEvent]:
    q = select(RecordingEvent).where(RecordingEvent.user_id == user_id).order_by(RecordingEvent.at)
    return list((await session.scalars(q)).all())


async def slices_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[Slice]:
    q = select(Slice).where(Slice.user_id == user_id).order_by(Slice.started_at)
    return list((await session.scalars(q)).all())


# --- join tickets ------------------------------------------------------------------------------


async def delete_expired_tickets(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(JoinTicket).where(JoinTicket.expires_at < before))


async def use_ticket(session: AsyncSession, ticket_hash: str, live_session_id: uuid.UUID,
                     now: datetime) -> JoinTicket | None:
    """Mark an unused, unexpired ticket for this live session used, atomically (one winner if two
    sockets race with the same ticket); the ticket, or None if there is no such ticket."""
    result = await session.execute(
        update(JoinTicket)
        .where(JoinTicket.ticket_hash == ticket_hash, JoinTicket.live_session_id == live_session_id,
               JoinTicket.used_at.is_(None), JoinTicket.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    row: JoinTicket | None = (await session.execute(
        select(JoinTicket).where(JoinTicket.ticket_hash == ticket_hash))).scalar_one_or_none()
    return row
