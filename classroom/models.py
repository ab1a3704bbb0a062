"""ORM models of the classroom: classes, enrollments, live sessions, participants,
consent/recording events, moderation controls and slices (the recorded pieces the moderation
pipeline works on)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, IdMixin, TimestampMixin, utcnow


class SessionStatus(enum.StrEnum):
    live = "live"
    ended = "ended"


class RecordedSource(enum.StrEnum):
    """What a participant can switch on; only mic and screen are recorded (camera: snapshots)."""

    mic = "mic"
    camera = "camera"
    screen = "screen"


class SliceSource(enum.StrEnum):
    mic = "mic"
    screen = "screen"
    snapshot = "snapshot"


class EventActor(enum.StrEnum):
    """Who switched a source on or off."""

    participant = "participant"
    moderator = "moderator"
    system = "system"


class ControlAction(enum.StrEnum):
    """A control the teacher, a moderator or an automated decision applied to a participant."""

    mute = "mute"
    unmute = "unmute"
    remove = "remove"
    readmit = "readmit"
    notice = "notice"  # a policy notice was shown to the participant (e.g. a moderation nudge)


class SliceStatus(enum.StrEnum):
    """Created ``pending``; the moderation pipeline owns every transition after that."""

    pending = "pending"
    processing = "processing"
    done = "done"
    failed = "failed"


class Class(IdMixin, TimestampMixin, Base):
    """A class a teacher schedules; students enroll, and it is held in live sessions."""

    __tablename__ = "classes"

    teacher_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    scheduled_start: Mapped[datetime | None] = mapped_column(default=None)
    scheduled_end: Mapped[datetime | None] = mapped_column(default=None)


class Enrollment(IdMixin, TimestampMixin, Base):
    """A student's place in a class (what lets them join its live sessions)."""

    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("class_id", "student_id", name="uq_enrollments_class_student"),)

    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)


class LiveSession(IdMixin, Base):
    """One meeting of a class in the relay (its room id is this id). At most one is live per class."""

    __tablename__ = "live_sessions"
    __table_args__ = (
        # The database, not a read-then-write race, guarantees a single live session per class.
        Index("uq_live_sessions_one_live", "class_id", unique=True,
              sqlite_where=text("status = 'live'"), postgresql_where=text("status = 'live'")),
    )

    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.live.value)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # The user who ended it; None with ``end_reason`` set means the system did (e.g. restart).
    ended_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    end_reason: Mapped[str | None] = mapped_column(String(200), default=None)


class Participant(IdMixin, Base):
    """One stay of a user in a live session (a rejoin is a new row)."""

    __tablename__ = "session_participants"
    __table_args__ = (Index("ix_session_participants_session_user", "session_id", "user_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # "teacher" | "student"
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(default=None)
    left_reason: Mapped[str | None] = mapped_column(String(40), default=None)


class RecordingEvent(IdMixin, Base):
    """A consent/recording event: one source of one participant switched on or off, by whom."""

    __tablename__ = "recording_events"
    __table_args__ = (Index("ix_recording_events_session_at", "session_id", "at"),)

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # RecordedSource
    enabled: Mapped[bool]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(16))  # EventActor
    by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    reason: Mapped[str | None] = mapped_column(String(300), default=None)


class ControlEvent(IdMixin, Base):
    """One moderation control on a participant of a live session (append-only).

    The log is the stored truth the relay does not keep: the latest mute/unmute per source says
    whether a source is muted when the participant (re)connects, the latest remove/readmit
    whether they may rejoin. ``by_user_id`` None means an automated decision.
    """

    __tablename__ = "session_control_events"
    __table_args__ = (Index("ix_session_control_events_session_user_at", "session_id", "user_id", "at"),)

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # ControlAction
    source: Mapped[str | None] = mapped_column(String(16), default=None)  # mute/unmute: RecordedSource
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    reason: Mapped[str | None] = mapped_column(String(300), default=None)


class Slice(IdMixin, TimestampMixin, Base):
    """A short, independently playable WebM of one participant's one source: the unit of review.

    Created once per closed recorder segment (``seq`` makes a re-announcement a no-op).
    ``legal_hold`` keeps the media past retention while it is evidence in an open case;
    ``media_deleted_at`` says the file is gone while the row (and flags on it) stay.
    """

    __tablename__ = "slices"
    __table_args__ = (
        UniqueConstraint("session_id", "user_id", "source", "seq", name="uq_slices_session_user_source_seq"),
        Index("ix_slices_session_started", "session_id", "started_at"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # SliceSource
    media_key: Mapped[str] = mapped_column(String(1024))
    content_type: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    duration_s: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    close_reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=SliceStatus.pending.value, index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    legal_hold: Mapped[bool] = mapped_column(default=False)
    media_deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class JoinTicket(IdMixin, TimestampMixin, Base):
    """A short-lived, single-use ticket that opens one signaling socket (``POST …/join`` hands it
    out), so the 7-day login token never travels in a URL. Only its SHA-256 is stored; it names
    the login token it was issued under, so revoking that token (or restricting the account)
    makes the ticket worthless too."""

    __tablename__ = "join_tickets"

    ticket_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    live_session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("live_sessions.id", ondelete="CASCADE"))
    auth_session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
