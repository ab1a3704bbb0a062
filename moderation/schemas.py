"""Shapes of the moderation pipeline's HTTP API (admin and staff views)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StageRunOut(_Out):
    """Progress of one stage of a slice."""

    stage: str
    status: str  # pending | waiting | running | done | failed
    attempts: int
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class SliceStateOut(_Out):
    """Where a slice is in the pipeline."""

    id: uuid.UUID
    session_id: uuid.UUID
    class_id: uuid.UUID
    user_id: uuid.UUID
    source: str
    seq: int
    started_at: datetime
    ended_at: datetime
    status: str
    error: str | None
    stages: list[StageRunOut] = []


class FlagOut(_Out):
    """One rule hit with its evidence: where in the slice (ms), what was said or shown, which rule."""

    id: uuid.UUID
    slice_id: uuid.UUID
    user_id: uuid.UUID | None
    session_id: uuid.UUID | None
    class_id: uuid.UUID | None
    source: str
    category: str
    rule_id: str
    rule_version: str
    policy_version: str
    severity: str
    confidence: float
    start_ms: int
    end_ms: int
    quote: str
    evidence: dict[str, Any]
    auto_action: str | None
    automated_detection: bool
    created_at: datetime


class TranscriptSegmentOut(BaseModel):
    start: float
    end: float
    text: str


class ScreenTextOut(BaseModel):
    t: float
    text: str
    score: float
    box: list[list[float]]


class SliceAnalysisOut(BaseModel):
    """What the pipeline read from a slice and what it flagged (personal data: reads are logged)."""

    slice: SliceStateOut
    language: str | None
    transcript: str
    segments: list[TranscriptSegmentOut]
    screen_text: list[ScreenTextOut]
    faces: int | None
    model: str | None
    policy_version: str | None
    flags: list[FlagOut]


class PolicyOut(BaseModel):
    """The policy in force (or one just installed)."""

    version: str
    digest: str
    origin: Literal["database", "file"]
    rules: int
    installed_at: datetime | None = None
    installed_by: uuid.UUID | None = None
