"""Request and response bodies of the review API (staff) and of decisions and appeals (users)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from moderation.review.models import Action, DisplayStatus
from moderation.schemas import FlagOut
from storage.fields import StoredText

SEVERITY_LABELS = {1: "low", 2: "medium", 3: "high", 4: "critical"}


class PersonOut(BaseModel):
    id: uuid.UUID
    display_name: str
    role: str
    status: str


class QueueItemOut(BaseModel):
    """One row of the queue: a case (a participant's flags of one category in one live session)."""

    id: uuid.UUID
    slice_id: uuid.UUID = Field(description="the case's first slice")
    slice_count: int = Field(description="slices with a flag in this case")
    last_flag_at: datetime | None = Field(description="when the case's latest hit was said or shown")
    status: DisplayStatus
    auto_restricted: bool = Field(description="a critical flag restricted the participant pending this review")
    severity: str
    severity_rank: int
    category: str = Field(description="category of the most severe flag")
    categories: list[str]
    rule_ids: list[str]
    flag_count: int
    source: str
    participant: PersonOut | None
    class_id: uuid.UUID | None
    created_at: datetime
    claimed_by: uuid.UUID | None
    lease_expires_at: datetime | None


class QueuePage(BaseModel):
    items: list[QueueItemOut]
    next_offset: int | None


class SegmentOut(BaseModel):
    start: float
    end: float
    text: str
    flag_ids: list[uuid.UUID] = Field(description="flags whose time range overlaps this segment (highlight)")


class TranscriptOut(BaseModel):
    language: str | None
    text: str
    segments: list[SegmentOut]


class OcrLineOut(BaseModel):
    t: float
    text: str
    box: list[list[float]] | None
    score: float | None


class ScreenEvidenceOut(BaseModel):
    """Where on the shared screen a flag's text was read: the frame time and its OCR box(es)."""

    flag_id: uuid.UUID
    frame_time: float
    boxes: list[list[list[float]]]


class SliceOut(BaseModel):
    id: uuid.UUID
    source: str
    content_type: str
    started_at: datetime
    ended_at: datetime
    duration_s: float
    media_available: bool


class ClassInfoOut(BaseModel):
    id: uuid.UUID
    title: str
    teacher: PersonOut | None


class AppealOut(BaseModel):
    id: uuid.UUID
    decision_id: uuid.UUID
    created_at: datetime
    text: str
    status: str
    decided_at: datetime | None
    outcome_explanation: str


class AppealStaffOut(AppealOut):
    decided_by: uuid.UUID | None
    outcome_reason: str


class DecisionStaffOut(BaseModel):
    id: uuid.UUID
    item_id: uuid.UUID | None
    created_at: datetime
    outcome: str
    action: str | None
    duration_days: int | None
    strike_number: int | None
    strike_action: str | None
    applied: list[dict[str, Any]]
    reason: str
    explanation: str
    internal_note: str
    actor_id: uuid.UUID | None
    actor_role: str
    automated_decision: str
    appeal: AppealStaffOut | None = None


class RestrictionOut(BaseModel):
    id: uuid.UUID
    kind: str
    automated: bool
    until: datetime | None
    applied: bool
    note: str
    created_at: datetime
    lifted_at: datetime | None


class TimelineEntryOut(BaseModel):
    """One line of a case's timeline: a hit on one of its slices, or something that happened to
    the case (live nudge, restriction, decision, appeal)."""

    at: datetime
    kind: str = Field(description="flag, or the event kind (live_nudge, decided, restriction_applied, …)")
    slice_id: uuid.UUID | None = None
    source: str | None = None
    offset_s: float | None = Field(default=None, description="where in its slice the hit starts")
    flag_id: uuid.UUID | None = None
    rule_id: str | None = None
    severity: str | None = None
    confidence: float | None = None
    quote: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class HistoryItemOut(BaseModel):
    item_id: uuid.UUID
    created_at: datetime
    status: str
    severity: str
    categories: list[str]
    flag_count: int
    quotes: list[str]


class HistoryOut(BaseModel):
    """The participant's earlier flags and decisions."""

    items: list[HistoryItemOut]
    decisions: list[DecisionStaffOut]
    active_strikes: int


class ItemDetail(QueueItemOut):
    """Everything a moderator needs to decide an item."""

    you_hold_lease: bool
    slice: SliceOut | None = Field(description="the slice shown (``?slice_id=``; default the first)")
    slices: list[SliceOut] = Field(description="every slice of the case, in the order of their first hit")
    timeline: list[TimelineEntryOut]
    class_: ClassInfoOut | None = Field(alias="class", serialization_alias="class")
    session_id: uuid.UUID | None
    flags: list[FlagOut]
    transcript: TranscriptOut | None
    ocr: list[OcrLineOut]
    screen: list[ScreenEvidenceOut]
    history: HistoryOut
    decisions: list[DecisionStaffOut]
    open_appeal: AppealStaffOut | None
    restrictions: list[RestrictionOut]

    model_config = {"populate_by_name": True}


class ClaimOut(BaseModel):
    item: ItemDetail | None = Field(description="null when nothing in the queue is free for you")


class LeaseOut(BaseModel):
    item_id: uuid.UUID
    lease_expires_at: datetime


class ClaimNextIn(BaseModel):
    category: str | None = Field(default=None, max_length=32)
    rule_id: str | None = Field(default=None, max_length=80)
    class_id: uuid.UUID | None = None
    participant_id: uuid.UUID | None = None


class DecisionIn(BaseModel):
    """A moderator's decision. ``reason`` (required) and ``internal_note`` stay with the staff;
    ``explanation`` is what the affected user reads."""

    outcome: Literal["dismiss", "confirm", "escalate"]
    action: Action | None = Field(default=None, description="required for confirm")
    duration_days: int | None = Field(default=None, ge=1, le=3650, description="required for suspend")
    reason: StoredText = Field(min_length=3, max_length=2000)
    explanation: StoredText = Field(default="", max_length=5000, description="user-visible; required for confirm")
    internal_note: StoredText = Field(default="", max_length=5000)

    @model_validator(mode="after")
    def _consistent(self) -> DecisionIn:
        self.reason = self.reason.strip()
        self.explanation = self.explanation.strip()
        if len(self.reason) < 3:
            raise ValueError("reason must not be blank")
        if self.outcome == "confirm":
            if self.action is None:
                raise ValueError("a confirmation needs an action (warn, mute, end_class, suspend, ban)")
            if len(self.explanation) < 10:
                raise ValueError("a confirmation needs a user-visible explanation (at least 10 characters)")
        elif self.action is not None:
            raise ValueError(f"{self.outcome} takes no action")
        if self.action == Action.suspend and self.duration_days is None:
            raise ValueError("a suspension needs duration_days")
        if self.action != Action.suspend and self.duration_days is not None:
            raise ValueError("duration_days only applies to suspend")
        return self


class DecisionResult(BaseModel):
    decision: DecisionStaffOut
    item: QueueItemOut
    replayed: bool = Field(description="true when this repeats an earlier identical request (nothing new happened)")
    next_item: ItemDetail | None = None


class AppealDecisionIn(BaseModel):
    outcome: Literal["uphold", "overturn"]
    reason: StoredText = Field(min_length=3, max_length=2000)
    explanation: StoredText = Field(min_length=10, max_length=5000, description="user-visible")


class AppealDecisionResult(BaseModel):
    appeal: AppealStaffOut
    item: QueueItemOut
    replayed: bool


class AppealIn(BaseModel):
    decision_id: uuid.UUID
    text: StoredText = Field(min_length=10, max_length=5000, description="why the decision is wrong, in your words")


class AppealSessionOut(BaseModel):
    token: str = Field(description="send as 'Authorization: Bearer'; only for your decisions and appeals")
    expires_at: datetime


class EvidenceOut(BaseModel):
    quote: str
    start_s: float
    end_s: float
    source: str
    frame_time: float | None = None
    occurrences: int = Field(default=1, description="how often this quote recurred in the case")


class DetectionOut(BaseModel):
    category: str
    rule_id: str
    rule_version: str
    policy_version: str


class AppliedOut(BaseModel):
    kind: str
    applied: bool
    until: datetime | None
    note: str
    source: str = Field(description="moderator, strike_table (repeated violations) or policy (automated)")


class StatementOfReasons(BaseModel):
    """A decision about the user, modelled on the EU DSA statement of reasons (Art. 17)."""

    decision_id: uuid.UUID
    decided_at: datetime
    outcome: str
    detected: DetectionOut
    automated_detection: bool
    automated_decision: Literal["fully", "partially", "not"]
    evidence: list[EvidenceOut]
    action: str | None
    duration_days: int | None
    strike_number: int | None
    applied: list[AppliedOut]
    explanation: str
    status: Literal["in_force", "pending_review", "lifted", "overturned", "dismissed"]
    appeal: AppealOut | None
    can_appeal: bool
    redress: str


class RecordingOpenIn(BaseModel):
    reason: StoredText = Field(min_length=3, max_length=2000, description="why you open this recording (access log)")
    slice_id: uuid.UUID | None = Field(default=None, description="which of the case's slices (default: the first)")


class RecordingOpenOut(BaseModel):
    id: uuid.UUID
    media_url: str
    frame_url: str
    content_type: str
    expires_at: datetime


class EventOut(BaseModel):
    seq: int
    at: datetime
    kind: str
    actor_id: uuid.UUID | None
    actor_role: str
    decision_id: uuid.UUID | None
    appeal_id: uuid.UUID | None
    data: dict[str, Any]
