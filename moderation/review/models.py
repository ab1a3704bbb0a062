"""ORM models of human review: queue items, decisions, appeals, strikes, restrictions,
recording opens and the append-only event log.

A review item is a *case*: the flags of one participant in one live session and one category,
gathered while the class runs (``CaseFlag`` lists them, with their slices); a decision applies
to the whole case, and a hit after the decision opens a new case. It denormalises what the
queue filters and sorts on (max severity, categories, rule ids, class, participant), so
listing never joins the flags. Decisions are written once and never edited; what changes
later (an appeal overturning one) is a new row elsewhere plus an event.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, IdMixin, TimestampMixin, utcnow


class ItemStatus(enum.StrEnum):
    """Stored state of an item. "in review" is not stored: it is an open item with a live lease,
    so an expired lease returns the item to the queue without anyone having to notice."""

    new = "new"
    escalated = "escalated"  # waits for an admin
    appealed = "appealed"    # waits for a moderator other than the one who decided
    decided = "decided"


OPEN_STATUSES = (ItemStatus.new.value, ItemStatus.escalated.value, ItemStatus.appealed.value)
OPEN_SQL = "status IN ('new', 'escalated', 'appealed')"
# A case still gathers flags until it is decided (an escalation is not a decision yet).
GATHERING_STATUSES = (ItemStatus.new.value, ItemStatus.escalated.value)
UNDECIDED_SQL = "status IN ('new', 'escalated') AND case_key IS NOT NULL"


class DisplayStatus(enum.StrEnum):
    """What the queue shows and filters on."""

    new = "new"
    in_review = "in_review"
    decided = "decided"
    escalated = "escalated"
    appealed = "appealed"


class Outcome(enum.StrEnum):
    restrict = "restrict"  # automated, provisional: a critical flag restricted the user at once
    dismiss = "dismiss"
    confirm = "confirm"
    escalate = "escalate"


class Action(enum.StrEnum):
    warn = "warn"
    mute = "mute"
    end_class = "end_class"
    suspend = "suspend"
    ban = "ban"


class AutomatedDecision(enum.StrEnum):
    """As in the EU DSA statement of reasons (Art. 17(3)(c))."""

    fully = "fully"
    partially = "partially"
    not_automated = "not"


class AppealStatus(enum.StrEnum):
    open = "open"
    upheld = "upheld"
    overturned = "overturned"


class ReviewItem(IdMixin, TimestampMixin, Base):
    """One case in the review queue (a participant's flags of one category in one live session),
    with its lease."""

    __tablename__ = "moderation_review_items"
    __table_args__ = (
        # The queue: open items in the order moderators take them. Partial, so the million
        # decided items never enter it.
        Index(
            "ix_review_items_queue", text("priority DESC"), text("max_severity_rank DESC"), "created_at", "id",
            postgresql_where=text(OPEN_SQL), sqlite_where=text(OPEN_SQL),
        ),
        Index("ix_review_items_user_created", "user_id", "created_at"),
        # One gathering case per key: two slices closing at once join one case, not two.
        Index("uq_review_items_undecided_case", "case_key", unique=True,
              postgresql_where=text(UNDECIDED_SQL), sqlite_where=text(UNDECIDED_SQL)),
    )

    slice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slices.id", ondelete="CASCADE"),
                                                index=True)  # the case's first slice
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    class_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.new.value)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # 1: a participant is restricted pending review
    max_severity_rank: Mapped[int] = mapped_column(Integer, default=1)
    category: Mapped[str] = mapped_column(String(32))  # of the most severe flag
    categories: Mapped[str] = mapped_column(String(400), default="|")  # "|a|b|" for LIKE '%|a|%'
    rule_ids: Mapped[str] = mapped_column(String(2000), default="|")
    flag_count: Mapped[int] = mapped_column(Integer, default=0)
    slice_count: Mapped[int] = mapped_column(Integer, default=1)
    case_key: Mapped[str | None] = mapped_column(String(120), default=None)  # session:user:category
    last_flag_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    first_claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    excluded_moderator_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    latest_decision_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseFlag(Base):
    """A flag in a case (each flag is in one case), with its slice and when it was said or shown."""

    __tablename__ = "moderation_case_flags"
    __table_args__ = (Index("ix_moderation_case_flags_item_at", "item_id", "at"),)

    flag_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("moderation_flags.id", ondelete="CASCADE"),
                                               primary_key=True)
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("moderation_review_items.id", ondelete="CASCADE"))
    slice_id: Mapped[uuid.UUID] = mapped_column(index=True)
    at: Mapped[datetime]  # slice start + the hit's offset: the case's timeline order
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class Decision(IdMixin, TimestampMixin, Base):
    """One decision on an item, written once. Carries its own copy of what the user is told
    (rule, versions, evidence), so it outlives media retention and policy changes."""

    __tablename__ = "moderation_decisions"
    __table_args__ = (
        UniqueConstraint("actor_id", "idempotency_key", name="uq_moderation_decisions_actor_key"),
    )

    item_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("moderation_review_items.id", ondelete="SET NULL"), index=True)
    slice_id: Mapped[uuid.UUID] = mapped_column()
    subject_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                              index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_role: Mapped[str] = mapped_column(String(16))  # moderator | admin | system
    outcome: Mapped[str] = mapped_column(String(16))
    action: Mapped[str | None] = mapped_column(String(32))
    duration_days: Mapped[int | None] = mapped_column(Integer)
    strike_number: Mapped[int | None] = mapped_column(Integer)
    strike_action: Mapped[str | None] = mapped_column(String(32))
    applied: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text)
    explanation: Mapped[str] = mapped_column(Text, default="")
    internal_note: Mapped[str] = mapped_column(Text, default="")
    automated_detection: Mapped[bool] = mapped_column(Boolean, default=True)
    automated_decision: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    rule_id: Mapped[str] = mapped_column(String(80))
    rule_version: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    visible_to_user: Mapped[bool] = mapped_column(Boolean, default=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    request_hash: Mapped[str | None] = mapped_column(String(64))


class Appeal(IdMixin, TimestampMixin, Base):
    """The affected user's one appeal against one decision."""

    __tablename__ = "moderation_appeals"

    decision_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("moderation_decisions.id"), unique=True)
    item_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("moderation_review_items.id", ondelete="SET NULL"), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=AppealStatus.open.value)
    decided_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome_reason: Mapped[str] = mapped_column(Text, default="")
    outcome_explanation: Mapped[str] = mapped_column(Text, default="")


class Strike(IdMixin, TimestampMixin, Base):
    """One confirmed violation counted against a user; an overturned decision clears its strike."""

    __tablename__ = "moderation_strikes"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    decision_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("moderation_decisions.id"), unique=True)
    cleared_at: Mapped[datetime | None] = mapped_column(default=None)
    cleared_by_appeal_id: Mapped[uuid.UUID | None] = mapped_column(default=None)


class Restriction(IdMixin, TimestampMixin, Base):
    """A restriction a decision put on a user (mute, end of class, suspension, ban), until lifted.

    The account's status is derived from the active ones, so lifting one restriction never
    lifts another that still holds.
    """

    __tablename__ = "moderation_restrictions"
    __table_args__ = (Index("ix_moderation_restrictions_user_active", "user_id", "lifted_at"),)

    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("moderation_review_items.id", ondelete="SET NULL"), index=True)
    decision_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("moderation_decisions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # mute | end_class | suspend | ban
    automated: Mapped[bool] = mapped_column(Boolean, default=False)
    live_session_id: Mapped[uuid.UUID | None] = mapped_column()
    until: Mapped[datetime | None] = mapped_column(default=None)
    applied: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(Text, default="")
    lifted_at: Mapped[datetime | None] = mapped_column(default=None)
    lifted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    lift_reason: Mapped[str | None] = mapped_column(Text)


class RecordingOpen(IdMixin, Base):
    """A staff member opened an item's recording (logged in the access log). Byte-range and
    frame requests ride on it until it expires, so one playback is one access-log entry."""

    __tablename__ = "moderation_recording_opens"

    staff_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("moderation_review_items.id", ondelete="CASCADE"))
    slice_id: Mapped[uuid.UUID] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class AppealSession(IdMixin, TimestampMixin, Base):
    """A short-lived token for a suspended or banned user, good only for reading the decisions
    about them and appealing (the EU DSA wants complaints open to restricted users too; their
    ordinary sessions end with the restriction). Only the token's SHA-256 is stored."""

    __tablename__ = "moderation_appeal_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]


class ModerationEvent(Base):
    """One line of the moderation event log. Append-only (database triggers refuse edits,
    except unlinking a cancelled person). ``seq`` gives a total order."""

    __tablename__ = "moderation_events"
    __table_args__ = (Index("ix_moderation_events_item", "item_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                     autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[uuid.UUID | None] = mapped_column()
    decision_id: Mapped[uuid.UUID | None] = mapped_column()
    appeal_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_role: Mapped[str] = mapped_column(String(16))
    subject_user_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
