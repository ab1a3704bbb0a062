"""ORM models of the moderation pipeline: per-stage progress, analysis results, flags, policies.

Every stage is keyed by (slice id, stage) so at-least-once delivery never duplicates work;
flags are keyed by (slice id, rule id, start in ms, fingerprint) so re-running a slice never
duplicates them (the fingerprint tells apart two hits of one rule that start at the same time,
e.g. two phone numbers on one slide).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, IdMixin, TimestampMixin, utcnow


class Stage(enum.StrEnum):
    media = "media"    # decode: audio → 16 kHz PCM, screen → sampled frames
    asr = "asr"        # speech → transcript segments
    vision = "vision"  # frames → OCR text boxes, snapshots → faces
    rules = "rules"    # transcript + screen text → flags


class Category(enum.StrEnum):
    off_platform_contact = "off_platform_contact"
    payment_bypass = "payment_bypass"
    abuse = "abuse"
    personal_data = "personal_data"
    custom = "custom"


SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}


class StageRun(IdMixin, Base):
    """Progress of one stage of one slice: the idempotency key of the pipeline."""

    __tablename__ = "moderation_stage_runs"
    __table_args__ = (UniqueConstraint("slice_id", "stage", name="uq_stage_runs_slice_stage"),)

    slice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slices.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SliceAnalysis(Base):
    """What the pipeline read from a slice: transcript segments, screen text, faces."""

    __tablename__ = "moderation_slice_analyses"

    slice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slices.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str | None] = mapped_column(String(16))
    transcript: Mapped[str] = mapped_column(Text, default="")
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{start, end, text}]
    ocr: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{t, text, box, score}]
    faces: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(200))
    policy_version: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Flag(IdMixin, TimestampMixin, Base):
    """One rule hit on one slice, with its evidence. Text survives media retention."""

    __tablename__ = "moderation_flags"
    __table_args__ = (
        UniqueConstraint("slice_id", "rule_id", "start_ms", "fingerprint", name="uq_flags_slice_rule_start_fp"),
    )

    slice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("slices.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    class_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(16))  # mic | screen | snapshot
    category: Mapped[str] = mapped_column(String(32), index=True)
    rule_id: Mapped[str] = mapped_column(String(80), index=True)
    rule_version: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    severity_rank: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    start_ms: Mapped[int] = mapped_column(Integer)
    end_ms: Mapped[int] = mapped_column(Integer)
    quote: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # box, frame_time, carried_from…
    auto_action: Mapped[str | None] = mapped_column(String(40))
    automated_detection: Mapped[bool] = mapped_column(Boolean, default=True)
    # rules.Hit.fingerprint: stable for the same text under the same policy (rule, value, n-th).
    fingerprint: Mapped[str] = mapped_column(String(32), default="")


class PolicyVersion(IdMixin, TimestampMixin, Base):
    """A rule set admins installed at run time; the newest active one overrides the shipped file."""

    __tablename__ = "moderation_policies"

    version: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
