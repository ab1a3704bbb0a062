"""What the affected user is told about a decision: a statement of reasons modelled on the EU
DSA (Art. 17): what was detected and by which rule version, whether detection and decision were
automated, the evidence excerpt, the action and its duration, the explanation, and redress."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from moderation.review import repository as repo
from moderation.review.auth import check_owns_decision
from moderation.review.models import Appeal, AppealStatus, Decision, Outcome, Restriction
from moderation.review.schemas import AppliedOut, DetectionOut, EvidenceOut, StatementOfReasons
from moderation.review.views import appeal_out

REDRESS = ("You can appeal this decision once, with your own explanation. A moderator who did not make the "
           "decision reviews it; if the appeal succeeds, the action is lifted and the strike removed.")
REDRESS_AUTOMATED = ("This restriction was applied automatically and a moderator will review it shortly. "
                     "You can add your side now with an appeal; the review answers it.")


def _status(d: Decision, appeal: Appeal | None, restrictions: list[Restriction]) -> str:
    if d.outcome == Outcome.dismiss.value:
        return "dismissed"
    if d.outcome == Outcome.restrict.value:
        return "pending_review" if any(r.lifted_at is None for r in restrictions) else "lifted"
    if appeal is not None and appeal.status == AppealStatus.overturned.value:
        return "overturned"
    return "in_force"


def _until(raw: object) -> datetime | None:
    return datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None


def statement(d: Decision, appeal: Appeal | None, restrictions: list[Restriction]) -> StatementOfReasons:
    status = _status(d, appeal, restrictions)
    can_appeal = appeal is None and (status == "in_force" or status == "pending_review")
    return StatementOfReasons(
        decision_id=d.id, decided_at=d.created_at, outcome=d.outcome,
        detected=DetectionOut(category=d.category, rule_id=d.rule_id, rule_version=d.rule_version,
                              policy_version=d.policy_version),
        automated_detection=d.automated_detection,
        automated_decision=d.automated_decision,  # type: ignore[arg-type]
        evidence=[EvidenceOut(quote=str(e.get("quote", "")), start_s=float(e.get("start_s", 0.0)),  # type: ignore[arg-type]
                              end_s=float(e.get("end_s", 0.0)), source=str(e.get("source", "")),  # type: ignore[arg-type]
                              frame_time=e.get("frame_time"),  # type: ignore[arg-type]
                              occurrences=int(e.get("occurrences", 1))) for e in d.evidence or []],  # type: ignore[call-overload]
        action=d.action, duration_days=d.duration_days, strike_number=d.strike_number,
        applied=[AppliedOut(kind=str(a.get("kind")), applied=bool(a.get("applied")), until=_until(a.get("until")),
                            note=str(a.get("note", "")), source=str(a.get("source", "moderator")))
                 for a in d.applied or []],
        explanation=d.explanation,
        status=status,  # type: ignore[arg-type]
        appeal=appeal_out(appeal) if appeal else None,
        can_appeal=can_appeal,
        redress=REDRESS_AUTOMATED if d.outcome == Outcome.restrict.value else REDRESS,
    )


async def my_decisions(session: AsyncSession, user: User, limit: int, offset: int) -> list[StatementOfReasons]:
    decisions = await repo.decisions_about(session, user.id, visible_only=True, limit=limit, offset=offset)
    appeals = await repo.appeals_of_decisions(session, [d.id for d in decisions])
    out = []
    for d in decisions:
        restrictions = await repo.restrictions_of_decision(session, d.id)
        out.append(statement(d, appeals.get(d.id), restrictions))
    return out


async def my_decision(session: AsyncSession, user: User, decision_id: uuid.UUID) -> StatementOfReasons:
    d = check_owns_decision(user, await repo.get_decision(session, decision_id))
    appeal = await repo.appeal_of_decision(session, d.id)
    return statement(d, appeal, await repo.restrictions_of_decision(session, d.id))
