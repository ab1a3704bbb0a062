"""Rules of the classroom: classes, enrollment, live sessions, moderation controls, the
consent/recording trail and slices. Services flush, never commit.

The moderation domain enforces decisions through ``mute_participant``, ``remove_participant``
and ``end_session`` (ids in, no HTTP user needed); their effect on the running relay starts
after the caller's transaction commits (see ``classroom.after_commit``). Every control on a
participant is also appended to the control log (``ControlEvent``): the relay forgets a
participant who leaves, the log is what re-applies a mute when they rejoin and what keeps a
removed participant out until a readmit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.events import SignOut, SignOutReason
from accounts.models import Role, User, UserStatus
from classroom import auth, live, live_control
from classroom import repository as repo
from classroom.after_commit import after_commit
from classroom.events import announce_slice_created
from classroom.models import (
    Class,
    ControlAction,
    ControlEvent,
    Enrollment,
    EventActor,
    JoinTicket,
    LiveSession,
    Participant,
    RecordingEvent,
    SessionStatus,
    Slice,
    SliceStatus,
)
from classroom.schemas import ClassIn, ClassOut
from classroom.staff_reads import log_staff_read
from storage.db import utcnow
from storage.errors import Conflict, Forbidden, NotFound, Unauthorized
from storage.media import MediaStore
from storage.runtime import get_runtime

log = logging.getLogger("classguard.classroom")

CONTENT_TYPES = {"mic": "audio/webm", "screen": "video/webm", "snapshot": "video/webm"}


# --- classes and enrollment ---------------------------------------------------------------------


async def create_class(session: AsyncSession, teacher: User, body: ClassIn) -> Class:
    cls = Class(teacher_id=teacher.id, title=body.title.strip(), description=body.description,
                scheduled_start=body.scheduled_start, scheduled_end=body.scheduled_end)
    await repo.add(session, cls)
    return cls


async def get_class(session: AsyncSession, class_id: uuid.UUID) -> Class:
    cls = await repo.get_class(session, class_id)
    if cls is None:
        raise NotFound("class not found")
    return cls


async def to_out(session: AsyncSession, classes: list[Class]) -> list[ClassOut]:
    live_ids = await repo.live_sessions_of_classes(session, [c.id for c in classes])
    out = []
    for c in classes:
        item = ClassOut.model_validate(c)
        item.live_session_id = live_ids.get(c.id)
        out.append(item)
    return out


async def list_classes(session: AsyncSession, user: User, limit: int, offset: int) -> list[Class]:
    """A teacher's own classes, a student's enrolled ones, every class for staff."""
    if user.role == Role.teacher.value:
        return await repo.classes_of_teacher(session, user.id, limit, offset)
    if auth.is_staff(user):
        return await repo.all_classes(session, limit, offset)
    return await repo.classes_of_student(session, user.id, limit, offset)


async def enroll(session: AsyncSession, class_id: uuid.UUID, student: User) -> tuple[Enrollment, bool]:
    """Enroll a student (idempotent); returns the enrollment and whether it is new."""
    cls = await get_class(session, class_id)
    if student.role != Role.student.value:
        raise Forbidden("only students enroll in classes")
    found = await repo.get_enrollment(session, cls.id, student.id)
    if found is not None:
        return found, False
    enrollment = Enrollment(class_id=cls.id, student_id=student.id)
    await repo.add(session, enrollment)
    return enrollment, True


async def enrollments_of(session: AsyncSession, cls: Class, user: User) -> list[Enrollment]:
    """The class's students, for its teacher and staff (a staff read is access-logged)."""
    auth.require_can_moderate(cls, user)
    rows = await repo.enrollments_of_class(session, cls.id)
    await log_staff_read(session, user, cls, "class_enrollments", cls.id, [e.student_id for e in rows],
                         f"staff view of the students of class {cls.id}")
    return rows


# --- live sessions ---------------------------------------------------------------------------------


async def start_session(session: AsyncSession, cls: Class, by: User) -> tuple[LiveSession, bool]:
    """The class's live session, started now if none is live; returns it and whether it is new.

    Two requests starting an idle class at once (two people joining at the same instant) both
    find none; the partial unique index (one live session per class) lets one insert win, and
    the other joins the winner's session instead of failing.
    """
    current = await repo.live_session_of_class(session, cls.id)
    if current is not None:
        return current, False
    started = LiveSession(class_id=cls.id, status=SessionStatus.live.value, started_by=by.id)
    if await repo.add_live_session(session, started):
        return started, True
    current = await repo.live_session_of_class(session, cls.id)
    if current is None:  # refused for another reason (e.g. the class was just deleted)
        raise Conflict("the live session could not be started; try again")
    return current, False


async def live_session_of(session: AsyncSession, class_id: uuid.UUID) -> LiveSession | None:
    return await repo.live_session_of_class(session, class_id)


async def join_class(session: AsyncSession, class_id: uuid.UUID,
                     user: User) -> tuple[LiveSession, Literal["teacher", "student"]]:
    """Authorise ``user`` for the class and return its live session (the first join starts it)."""
    cls = await get_class(session, class_id)
    role = await auth.join_role(session, cls, user)
    live_session, _ = await start_session(session, cls, user)
    await _refuse_removed(session, live_session.id, user.id)
    return live_session, role


async def get_session(session: AsyncSession, session_id: uuid.UUID) -> tuple[LiveSession, Class]:
    ls = await repo.get_live_session(session, session_id)
    if ls is None:
        raise NotFound("live session not found")
    cls = await get_class(session, ls.class_id)
    return ls, cls


async def authorize_join(session: AsyncSession, session_id: uuid.UUID,
                         user: User) -> tuple[LiveSession, Class, Literal["teacher", "student"]]:
    """May ``user`` connect to this session now? 404 unknown, 403 not a member (or removed), 409 ended."""
    ls, cls = await get_session(session, session_id)
    role = await auth.join_role(session, cls, user)
    if ls.status != SessionStatus.live.value:
        raise Conflict("this live session has ended")
    await _refuse_removed(session, ls.id, user.id)
    return ls, cls, role


async def _refuse_removed(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    if await is_removed(session, session_id, user_id):
        raise Forbidden("you were removed from this live session")


async def is_removed(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether the user is kept out of the session: their latest remove/readmit is a remove."""
    last = await repo.last_removal_control(session, session_id, user_id)
    if last is not None:
        return last.action == ControlAction.remove.value
    # a removal stored before the control log existed is only on the stay
    stays = [p for p in await repo.participations(session, session_id) if p.user_id == user_id]
    return bool(stays) and stays[-1].left_reason == "removed"


async def participant_joined(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID,
                             role: str) -> Participant:
    row = Participant(session_id=session_id, user_id=user_id, role=role)
    await repo.add(session, row)
    return row


async def participant_left(session: AsyncSession, participant_row_id: uuid.UUID, reason: str = "left") -> None:
    """Close one stay, unless something (remove, end) already closed it with its own reason."""
    row = await session.get(Participant, participant_row_id)
    if row is not None and row.left_at is None:
        row.left_at = utcnow()
        row.left_reason = reason
        await session.flush()


# --- consent / recording events --------------------------------------------------------------------


async def record_source_change(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, source: str,
                               enabled: bool, at: datetime, by: str, by_user_id: uuid.UUID | None = None,
                               reason: str | None = None) -> RecordingEvent | None:
    """Store an on/off of one source, if it changes the stored state (reports are idempotent:
    the relay confirming a moderator's mute the service already recorded adds nothing)."""
    last = await repo.last_recording_event(session, session_id, user_id, source)
    currently_on = last is not None and last.enabled
    if currently_on == enabled:
        return None
    if last is not None and at < last.at:
        at = last.at  # keep the trail ordered even if clocks of two reporters differ slightly
    event = RecordingEvent(session_id=session_id, user_id=user_id, source=source, enabled=enabled, at=at,
                           by=by, by_user_id=by_user_id, reason=reason)
    await repo.add(session, event)
    return event


async def _switch_off(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID | None,
                      sources: set[str] | None, by_user_id: uuid.UUID | None, reason: str | None) -> None:
    """Record "off" for every source the trail says is on (of one user or everyone)."""
    by = EventActor.moderator.value if by_user_id is not None else EventActor.system.value
    now = utcnow()
    for uid, source in await repo.sources_on(session, session_id, user_id):
        if sources is None or source in sources:
            await record_source_change(session, session_id, uid, source, False, now, by, by_user_id, reason)


# --- moderation controls (also the moderation domain's enforcement API) ---------------------------


async def _live_participant(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> LiveSession:
    ls = await repo.get_live_session(session, session_id)
    if ls is None:
        raise NotFound("live session not found")
    if ls.status != SessionStatus.live.value:
        raise Conflict("this live session has ended")
    stays = [p for p in await repo.participations(session, session_id) if p.user_id == user_id]
    if not stays:
        raise NotFound("this user has not joined the live session")
    return ls


async def _log_control(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, action: ControlAction,
                       by_user_id: uuid.UUID | None, reason: str | None, source: str | None = None) -> ControlEvent:
    """Append a control to the log, strictly after the participant's earlier ones (the latest wins)."""
    at = utcnow()
    earlier = await repo.control_events(session, session_id, user_id)
    if earlier and earlier[-1].at >= at:
        at = earlier[-1].at + timedelta(microseconds=1)  # same clock tick, or a clock that stepped back
    event = ControlEvent(session_id=session_id, user_id=user_id, action=action.value, source=source, at=at,
                         by_user_id=by_user_id, reason=reason)
    await repo.add(session, event)
    return event


async def muted_sources(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> set[str]:
    """The participant's sources under a mute (the relay re-applies them on every connect)."""
    return await repo.muted_sources(session, session_id, user_id)


async def mute_participant(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID,
                           by_user_id: uuid.UUID | None, reason: str | None, source: str = "mic") -> bool:
    """Mute one source of a participant: it stops being forwarded and recorded at once, and stays
    muted if they leave and rejoin, until unmuted.

    Returns whether the participant is connected to the relay right now. ``by_user_id=None``
    means an automated decision (recorded as by "system").
    """
    await _live_participant(session, session_id, user_id)
    await _log_control(session, session_id, user_id, ControlAction.mute, by_user_id, reason, source)
    await _switch_off(session, session_id, user_id, {source}, by_user_id, reason)
    after_commit(session, lambda: live.mute(session_id, user_id, source, True, by_user_id, reason),
                 f"mute {session_id}/{user_id}/{source}")
    return live.is_connected(session_id, user_id)


async def unmute_participant(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID,
                             by_user_id: uuid.UUID | None, reason: str | None, source: str = "mic") -> bool:
    """Lift a mute; the source is on again only if the participant still has it switched on
    (the relay reports that, and the recording event is written then)."""
    await _live_participant(session, session_id, user_id)
    await _log_control(session, session_id, user_id, ControlAction.unmute, by_user_id, reason, source)
    after_commit(session, lambda: live.mute(session_id, user_id, source, False, by_user_id, reason),
                 f"unmute {session_id}/{user_id}/{source}")
    return live.is_connected(session_id, user_id)


async def remove_participant(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID,
                             by_user_id: uuid.UUID | None, reason: str | None) -> bool:
    """Disconnect a participant and keep them out of this session (until readmitted)."""
    await _live_participant(session, session_id, user_id)
    connected = live.is_connected(session_id, user_id)
    await _log_control(session, session_id, user_id, ControlAction.remove, by_user_id, reason)
    await _switch_off(session, session_id, user_id, None, by_user_id, reason)
    now = utcnow()
    stays = [p for p in await repo.participations(session, session_id) if p.user_id == user_id]
    for stay in stays:
        if stay.left_at is None:
            stay.left_at, stay.left_reason = now, "removed"
    # The control log, not the stay, keeps them out; a stay that had already ended keeps its reason.
    await session.flush()
    after_commit(session, lambda: live.remove(session_id, user_id, by_user_id, reason),
                 f"remove {session_id}/{user_id}")
    return connected


async def readmit_participant(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID,
                              by_user_id: uuid.UUID | None, reason: str | None) -> ControlEvent:
    """Undo a removal: the participant may join this session again (their mutes still hold).

    404 if they never joined, 409 if the session has ended or they are not removed.
    """
    await _live_participant(session, session_id, user_id)
    if not await is_removed(session, session_id, user_id):
        raise Conflict("this participant is not removed from the session")
    return await _log_control(session, session_id, user_id, ControlAction.readmit, by_user_id, reason)


async def notify_participant(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, *,
                             kind: str, texts: dict[str, str], reason: str | None,
                             details: dict[str, str] | None = None) -> bool:
    """Show a notice to a participant in the live class, in the page's language (``texts`` maps
    a language tag, "en" and "zh", to the text), and tell the class's teachers it was shown.

    Stored in the control log (action "notice", ``reason`` says why) and sent over the
    participant's signaling socket once the caller commits. Returns whether the participant is
    connected to the relay of this process right now (only then is it shown live; see
    ``live.notify``). 404/409 like the other controls when they are not in a live session.
    """
    await _live_participant(session, session_id, user_id)
    event = await _log_control(session, session_id, user_id, ControlAction.notice, None, reason)
    message = {"type": "notice", "kind": kind, "texts": dict(texts), "at": event.at.isoformat(),
               "details": dict(details or {})}
    after_commit(session, lambda: live.notify(session_id, user_id, message), f"notice {session_id}/{user_id}")
    return live.is_connected(session_id, user_id)


async def control_events(session: AsyncSession, session_id: uuid.UUID, user: User) -> list[ControlEvent]:
    """The session's control log (participants see the controls applied to them)."""
    _, cls = await get_session(session, session_id)
    only = await auth.events_visible_to(session, cls, user)
    rows = await repo.control_events(session, session_id, only)
    await log_staff_read(session, user, cls, "control_events", session_id, [e.user_id for e in rows],
                         f"staff view of the controls in live session {session_id}")
    return rows


async def end_session(session: AsyncSession, session_id: uuid.UUID, by_user_id: uuid.UUID | None,
                      reason: str | None) -> LiveSession:
    """End a live session: everyone is disconnected, every open segment closes. Idempotent."""
    ls = await repo.get_live_session(session, session_id)
    if ls is None:
        raise NotFound("live session not found")
    if ls.status == SessionStatus.ended.value:
        return ls
    now = utcnow()
    ls.status = SessionStatus.ended.value
    ls.ended_at = now
    ls.ended_by = by_user_id
    ls.end_reason = reason or ("ended by the teacher or a moderator" if by_user_id else "ended by the system")
    await _switch_off(session, session_id, None, None, by_user_id, reason or "session ended")
    await repo.close_open_participations(session, session_id, now, "ended")
    await session.flush()
    after_commit(session, lambda: live.end_room(session_id, by_user_id, reason), f"end {session_id}")
    return ls


# --- join tickets -------------------------------------------------------------------------------


def _ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


async def issue_join_ticket(session: AsyncSession, live_session_id: uuid.UUID, user_id: uuid.UUID,
                            auth_session_id: uuid.UUID, ttl_seconds: int) -> tuple[str, datetime]:
    """A single-use ticket for one signaling socket of this user in this live session, valid for
    ``ttl_seconds``; returns (the plain ticket, shown once; its expiry)."""
    now = utcnow()
    await repo.delete_expired_tickets(session, now)
    ticket = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=ttl_seconds)
    await repo.add(session, JoinTicket(ticket_hash=_ticket_hash(ticket), user_id=user_id,
                                       live_session_id=live_session_id, auth_session_id=auth_session_id,
                                       expires_at=expires))
    return ticket, expires


async def redeem_join_ticket(session: AsyncSession, ticket: str, live_session_id: uuid.UUID) -> uuid.UUID:
    """Use a ticket for this live session (once); returns the login token row it was issued under,
    which the caller must still check (it may have been revoked, the account restricted)."""
    row = await repo.use_ticket(session, _ticket_hash(ticket), live_session_id, utcnow())
    if row is None:
        raise Unauthorized("invalid, expired or already used join ticket; POST …/join for a new one")
    return row.auth_session_id


# --- closing a user's live connections: sanctions, sign-outs, consent withdrawal ------------------

REMOVED_SIGNED_OUT = "signed-out"  # what the participant is told ("removed" reason), and the stay's left_reason
REMOVED_RESTRICTED = "account-restricted"
REMOVED_CONSENT_WITHDRAWN = "consent-withdrawn"


async def disconnect_user(user_id: uuid.UUID, reason: str, *, live_session_id: uuid.UUID | None = None,
                          trail_reason: str | None = None) -> None:
    """Close every open live connection of a user (of one live session, or all), on whichever relay
    node holds it: forwarding stops, recording stops and the open segments are stored as normal
    slices, the room's participant list drops them. Call AFTER the commit of the state that
    keeps them out (a reconnect is refused by that state, not by this call)."""
    await live_control.control_of(get_runtime()).send(live_control.ControlMessage(
        live_control.DISCONNECT, reason, user_id=user_id, live_session_id=live_session_id,
        data={"trail_reason": trail_reason or reason}))


async def disconnect_token(auth_session_id: uuid.UUID, reason: str = REMOVED_SIGNED_OUT) -> None:
    """Close the live connections opened with one login token (logout). Call after commit."""
    await live_control.control_of(get_runtime()).send(live_control.ControlMessage(
        live_control.DISCONNECT, reason, auth_session_id=auth_session_id, data={"trail_reason": "signed out"}))


async def withdraw_consent(user_id: uuid.UUID, live_session_id: uuid.UUID | None = None) -> None:
    """Consent to recording withdrawn: the same path as a sanction (call after its commit)."""
    await disconnect_user(user_id, REMOVED_CONSENT_WITHDRAWN, live_session_id=live_session_id,
                          trail_reason="consent withdrawn")


async def on_sign_out(event: SignOut) -> None:
    """accounts' sign-out hook (wired by the composition root; runs after commit)."""
    if event.auth_session_id is not None:
        await disconnect_token(event.auth_session_id)
    else:
        await disconnect_user(event.user_id, REMOVED_SIGNED_OUT if event.reason == SignOutReason.logout
                              else REMOVED_RESTRICTED, trail_reason=f"account {event.reason}")


async def close_stale_state(session: AsyncSession) -> int:
    """After a restart nobody is connected: close open stays and sources of live sessions.

    Sessions stay live (participants reconnect); the trail says recording stopped at restart.
    """
    sessions = await repo.all_live_sessions(session)
    now = utcnow()
    for ls in sessions:
        await _switch_off(session, ls.id, None, None, None, "server restarted")
    await repo.close_open_participations(session, None, now, "server-restart")
    return len(sessions)


# --- reading the trail and the slices --------------------------------------------------------------


async def recording_events(session: AsyncSession, session_id: uuid.UUID, user: User) -> list[RecordingEvent]:
    _, cls = await get_session(session, session_id)
    only = await auth.events_visible_to(session, cls, user)
    rows = await repo.recording_events(session, session_id, only)
    await log_staff_read(session, user, cls, "recording_events", session_id, [e.user_id for e in rows],
                         f"staff view of the recording trail of live session {session_id}")
    return rows


async def participants(session: AsyncSession, session_id: uuid.UUID, user: User) -> list[Participant]:
    """Every stay in the session, for its members and staff (a staff read is access-logged)."""
    cls = await _session_readable(session, session_id, user)
    rows = await repo.participations(session, session_id)
    await log_staff_read(session, user, cls, "session_participants", session_id, [p.user_id for p in rows],
                         f"staff view of the participants of live session {session_id}")
    return rows


async def live_participants(session: AsyncSession, session_id: uuid.UUID, user: User) -> list[dict[str, Any]]:
    """Who is connected right now (the relay's state); a staff read is access-logged."""
    cls = await _session_readable(session, session_id, user)
    state = live.participants_state(session_id)
    await log_staff_read(session, user, cls, "live_participants", session_id,
                         [uuid.UUID(p["participant_id"]) for p in state],
                         f"staff view of who is connected to live session {session_id}")
    return state


async def _session_readable(session: AsyncSession, session_id: uuid.UUID, user: User) -> Class:
    _, cls = await get_session(session, session_id)
    if not auth.is_staff(user):
        await auth.join_role(session, cls, user)
    return cls


# --- slices ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentFacts:
    """What the recorder (or crash recovery) knows about one finished segment file."""

    room_id: uuid.UUID  # the live session id
    participant_id: uuid.UUID  # the user id
    source: str  # "mic" | "screen" | "snapshot"
    path: Path
    seq: int
    started_at: datetime
    ended_at: datetime
    duration: float
    close_reason: str


SliceOutcome = Literal["created", "exists", "discard", "unknown-session", "cancelled-account"]


def slice_media_key(region: str, session_id: uuid.UUID, user_id: uuid.UUID, source: str, seq: int) -> str:
    """Media keys start with the recorded person's region, so the store keeps them there (promise 9)."""
    return f"{region}/slices/{session_id}/{user_id}/{source}/{seq:06d}.webm"


def count_packets(path: Path) -> int:
    """Packets that demux from a WebM file (0 for an unreadable one). Blocking: call in a thread."""
    import av

    try:
        container = av.open(str(path), format="webm")
    except (av.FFmpegError, OSError, ValueError):
        return 0
    try:
        return sum(1 for p in container.demux(container.streams[0]) if p.size > 0)
    except (av.FFmpegError, ValueError, EOFError):
        return 0
    finally:
        container.close()


async def create_slice(session: AsyncSession, media: MediaStore,
                       facts: SegmentFacts) -> tuple[Slice | None, SliceOutcome]:
    """Store a finished segment as a slice and announce it, in the caller's transaction.

    Idempotent on (session, user, source, seq): a segment announced twice (callback, then crash
    recovery) yields one slice. The file goes to the media store before the row, so a committed
    row always has its media; an unreadable file is never turned into a slice.
    """
    ls = await repo.get_live_session(session, facts.room_id)
    if ls is None:
        return None, "unknown-session"
    existing = await repo.find_slice(session, facts.room_id, facts.participant_id, facts.source, facts.seq)
    if existing is not None:
        return existing, "exists"
    owner = await session.get(User, facts.participant_id)
    if owner is not None and owner.status == UserStatus.cancelled.value:
        # the segment closed by the cancellation itself: stored now, it would outlive the
        # deletion of the account's recordings (privacy promise 5)
        return None, "cancelled-account"
    if await asyncio.to_thread(count_packets, facts.path) == 0:
        return None, "discard"
    region = owner.region if owner is not None else "unknown"
    key = slice_media_key(region, facts.room_id, facts.participant_id, facts.source, facts.seq)
    content_type = CONTENT_TYPES.get(facts.source, "video/webm")
    size = await media.put_file(key, facts.path, content_type)
    row = Slice(
        session_id=ls.id, class_id=ls.class_id, user_id=facts.participant_id, source=facts.source,
        media_key=key, content_type=content_type, started_at=facts.started_at, ended_at=facts.ended_at,
        duration_s=facts.duration, size_bytes=size, seq=facts.seq, close_reason=facts.close_reason,
        status=SliceStatus.pending.value,
    )
    await repo.add(session, row)
    await announce_slice_created(session, row.id)
    return row, "created"


async def next_slice_seqs(session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, int]:
    """Per source, the first segment number not yet used by a stored slice of this participant."""
    return {source: top + 1 for source, top in (await repo.highest_slice_seqs(session, session_id, user_id)).items()}


async def get_slice(session: AsyncSession, slice_id: uuid.UUID, reader: User | None = None) -> Slice:
    """A slice's metadata; read by ``reader`` (staff) it is access-logged."""
    row = await repo.get_slice(session, slice_id)
    if row is None:
        raise NotFound("slice not found")
    if reader is not None:
        await log_staff_read(session, reader, None, "slice", row.id, [row.user_id], f"staff view of slice {row.id}")
    return row


async def list_slices(session: AsyncSession, *, session_id: uuid.UUID | None = None,
                      class_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None,
                      source: str | None = None, status: str | None = None,
                      limit: int = 100, offset: int = 0, reader: User | None = None) -> list[Slice]:
    """Slices, filtered; listed by ``reader`` (staff) every participant named is access-logged."""
    if session_id is not None:
        await get_session(session, session_id)
    rows = await repo.list_slices(session, session_id=session_id, class_id=class_id, user_id=user_id,
                                  source=source, status=status, limit=limit, offset=offset)
    if reader is not None:
        await log_staff_read(session, reader, None, "slice_list", session_id or class_id or "all",
                             [r.user_id for r in rows], "staff view of recorded slices")
    return rows
