"""Turning review rows into API bodies (no SQL, no rules)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from accounts.models import User
from moderation.models import Flag, SliceAnalysis
from moderation.review.models import (
    Appeal,
    CaseFlag,
    Decision,
    DisplayStatus,
    ItemStatus,
    ModerationEvent,
    Restriction,
    ReviewItem,
)
from moderation.review.schemas import (
    SEVERITY_LABELS,
    AppealOut,
    AppealStaffOut,
    DecisionStaffOut,
    FlagOut,
    OcrLineOut,
    PersonOut,
    QueueItemOut,
    RestrictionOut,
    ScreenEvidenceOut,
    SegmentOut,
    TimelineEntryOut,
    TranscriptOut,
)


def split_tokens(value: str) -> list[str]:
    return [t for t in value.split("|") if t]


def join_tokens(values: Iterable[str]) -> str:
    return "|" + "".join(f"{v}|" for v in sorted(set(values)))


def display_status(item: ReviewItem, now: datetime) -> DisplayStatus:
    if item.status != ItemStatus.decided.value and item.lease_expires_at is not None and item.lease_expires_at > now:
        return DisplayStatus.in_review
    return DisplayStatus(item.status)


def person(user: User | None) -> PersonOut | None:
    if user is None:
        return None
    return PersonOut(id=user.id, display_name=user.display_name, role=user.role, status=user.status)


def queue_item(item: ReviewItem, now: datetime, users: dict[uuid.UUID, User]) -> QueueItemOut:
    return QueueItemOut(
        id=item.id, slice_id=item.slice_id, slice_count=item.slice_count, last_flag_at=item.last_flag_at,
        status=display_status(item, now), auto_restricted=item.priority > 0,
        severity=SEVERITY_LABELS.get(item.max_severity_rank, str(item.max_severity_rank)),
        severity_rank=item.max_severity_rank, category=item.category, categories=split_tokens(item.categories),
        rule_ids=split_tokens(item.rule_ids), flag_count=item.flag_count, source=item.source,
        participant=person(users.get(item.user_id)) if item.user_id else None, class_id=item.class_id,
        created_at=item.created_at, claimed_by=item.claimed_by,
        lease_expires_at=item.lease_expires_at if display_status(item, now) == DisplayStatus.in_review else None,
    )


def flag_out(f: Flag) -> FlagOut:
    return FlagOut.model_validate(f)


def timeline(entries: Sequence[tuple[CaseFlag, Flag]], events: Sequence[ModerationEvent]) -> list[TimelineEntryOut]:
    """A case's hits and what happened to it, in time order (a hit at when it was said or shown)."""
    out = [TimelineEntryOut(at=c.at, kind="flag", slice_id=c.slice_id, source=f.source, offset_s=f.start_ms / 1000,
                            flag_id=f.id, rule_id=f.rule_id, severity=f.severity, confidence=f.confidence,
                            quote=f.quote) for c, f in entries]
    for e in events:
        data = dict(e.data or {})
        out.append(TimelineEntryOut(at=e.at, kind=e.kind, rule_id=data.get("rule_id"), data=data))
    return sorted(out, key=lambda t: t.at)


def transcript(analysis: SliceAnalysis | None, flags: Sequence[Flag]) -> TranscriptOut | None:
    """Transcript segments, each naming the flags whose time range overlaps it (the hit)."""
    if analysis is None or not (analysis.segments or analysis.transcript):
        return None
    spoken = [f for f in flags if f.source != "screen"]
    segments = []
    for seg in analysis.segments or []:
        start, end = float(seg.get("start", 0.0)), float(seg.get("end", 0.0))
        hits = [f.id for f in spoken if f.start_ms / 1000 < end + 0.05 and f.end_ms / 1000 > start - 0.05]
        segments.append(SegmentOut(start=start, end=end, text=str(seg.get("text", "")), flag_ids=hits))
    return TranscriptOut(language=analysis.language, text=analysis.transcript or "", segments=segments)


def _box(raw: Any) -> list[list[float]] | None:
    if not raw:
        return None
    try:
        if len(raw) == 4 and all(isinstance(v, int | float) for v in raw):  # x1, y1, x2, y2
            x1, y1, x2, y2 = (float(v) for v in raw)
            return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
        return [[float(p[0]), float(p[1])] for p in raw]
    except (TypeError, ValueError, IndexError):
        return None


def ocr_lines(analysis: SliceAnalysis | None) -> list[OcrLineOut]:
    if analysis is None:
        return []
    out = []
    for line in analysis.ocr or []:
        score = line.get("score")
        out.append(OcrLineOut(t=float(line.get("t", 0.0)), text=str(line.get("text", "")), box=_box(line.get("box")),
                              score=float(score) if score is not None else None))
    return out


def screen_evidence(flags: Sequence[Flag]) -> list[ScreenEvidenceOut]:
    out = []
    for f in flags:
        ev = f.evidence or {}
        if f.source != "screen":
            continue
        raw_boxes = list(ev.get("boxes") or ([] if ev.get("box") is None else [ev["box"]]))
        boxes = [b for b in (_box(r) for r in raw_boxes) if b]
        frame_time = ev.get("frame_time")
        out.append(ScreenEvidenceOut(flag_id=f.id, boxes=boxes,
                                     frame_time=float(frame_time) if frame_time is not None else f.start_ms / 1000))
    return out


def appeal_out(a: Appeal) -> AppealOut:
    return AppealOut(id=a.id, decision_id=a.decision_id, created_at=a.created_at, text=a.text, status=a.status,
                     decided_at=a.decided_at, outcome_explanation=a.outcome_explanation)


def appeal_staff(a: Appeal) -> AppealStaffOut:
    return AppealStaffOut(**appeal_out(a).model_dump(), decided_by=a.decided_by, outcome_reason=a.outcome_reason)


def decision_staff(d: Decision, appeal: Appeal | None = None) -> DecisionStaffOut:
    return DecisionStaffOut(
        id=d.id, item_id=d.item_id, created_at=d.created_at, outcome=d.outcome, action=d.action,
        duration_days=d.duration_days, strike_number=d.strike_number, strike_action=d.strike_action,
        applied=list(d.applied or []), reason=d.reason, explanation=d.explanation, internal_note=d.internal_note,
        actor_id=d.actor_id, actor_role=d.actor_role, automated_decision=d.automated_decision,
        appeal=appeal_staff(appeal) if appeal else None,
    )


def restriction_out(r: Restriction) -> RestrictionOut:
    return RestrictionOut(id=r.id, kind=r.kind, automated=r.automated, until=r.until, applied=r.applied,
                          note=r.note, created_at=r.created_at, lifted_at=r.lifted_at)
