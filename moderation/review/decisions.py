"""Deciding a case: dismiss, confirm with an action, or escalate to admins. A decision covers
every flag of the case, on all its slices: one decision, one enforcement, one strike.

A decision is taken only by the holder of the item's live lease, through one compare-and-set
UPDATE, so a repeated or racing request can never decide twice. A repeat (same
``Idempotency-Key``, or the same moderator sending the same body for an item they already
decided) returns the first result and adds nothing: no second strike, no second restriction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from moderation.models import Flag
from moderation.review import enforcement, events_log, strikes
from moderation.review import repository as repo
from moderation.review.auth import check_may_claim
from moderation.review.events_log import EventKind
from moderation.review.metrics import TIME_TO_DECISION, observe_after_commit, seconds_since
from moderation.review.models import (
    Action,
    AppealStatus,
    AutomatedDecision,
    Decision,
    ItemStatus,
    Outcome,
    ReviewItem,
)
from moderation.review.schemas import DecisionIn
from moderation.review.service import get_item_or_404
from storage.db import utcnow
from storage.errors import Conflict
from storage.runtime import get_runtime

DISMISS_EXPLANATION = ("A moderator reviewed the automated restriction on your account and found no "
                       "violation. The restriction has been lifted.")


@dataclass
class Decided:
    decision: Decision
    item: ReviewItem
    replayed: bool


def request_hash(item_id: uuid.UUID, body: DecisionIn) -> str:
    payload = {"item_id": str(item_id), **body.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def top_flag(flags: list[Flag]) -> Flag | None:
    """The flag a decision is "about": the most severe, then the earliest."""
    return min(flags, key=lambda f: (-f.severity_rank, f.start_ms), default=None)


EVIDENCE_LIMIT = 50


def evidence_of(flags: list[Flag]) -> list[dict[str, object]]:
    """The excerpt the user is shown: each distinct quote once (with how often it recurred in the
    case, e.g. a slide on screen for 20 minutes), its time in the slice (and frame for screen
    text). ``flags`` come in case order."""
    out: list[dict[str, object]] = []
    seen: dict[tuple[str, str, str], dict[str, object]] = {}
    for f in flags:
        key = (f.source, f.rule_id, f.quote)
        if key in seen:
            seen[key]["occurrences"] = int(str(seen[key]["occurrences"])) + 1
            continue
        entry: dict[str, object] = {"quote": f.quote, "start_s": f.start_ms / 1000, "end_s": f.end_ms / 1000,
                                    "source": f.source, "rule_id": f.rule_id, "category": f.category,
                                    "slice_id": str(f.slice_id), "occurrences": 1}
        if f.source == "screen" and (f.evidence or {}).get("frame_time") is not None:
            entry["frame_time"] = f.evidence["frame_time"]
        seen[key] = entry
        if len(out) < EVIDENCE_LIMIT:
            out.append(entry)
    return out


def new_decision(item: ReviewItem, flags: list[Flag], *, outcome: Outcome, actor_id: uuid.UUID | None,
                 actor_role: str, automated: AutomatedDecision, reason: str, explanation: str = "",
                 internal_note: str = "", action: Action | None = None, duration_days: int | None = None,
                 visible: bool = True) -> Decision:
    top = top_flag(flags)
    return Decision(
        id=uuid.uuid4(), created_at=utcnow(), item_id=item.id, slice_id=item.slice_id,
        subject_user_id=item.user_id, actor_id=actor_id, actor_role=actor_role, outcome=outcome.value,
        action=action.value if action else None, duration_days=duration_days, applied=[], reason=reason,
        explanation=explanation, internal_note=internal_note,
        automated_detection=any(f.automated_detection for f in flags) if flags else False,
        automated_decision=automated.value,
        category=top.category if top else item.category, rule_id=top.rule_id if top else "",
        rule_version=top.rule_version if top else "", policy_version=top.policy_version if top else "",
        evidence=evidence_of(flags), visible_to_user=visible,
    )


async def _replay(session: AsyncSession, staff: User, item: ReviewItem, fingerprint: str) -> Decided | None:
    """The earlier result if this staff member already made exactly this decision on this item."""
    if item.latest_decision_id is None:
        return None
    latest = await repo.get_decision(session, item.latest_decision_id)
    if latest is not None and latest.actor_id == staff.id and latest.request_hash == fingerprint:
        return Decided(latest, item, replayed=True)
    return None


async def decide(session: AsyncSession, staff: User, item_id: uuid.UUID, body: DecisionIn,
                 idempotency_key: str | None) -> Decided:
    fingerprint = request_hash(item_id, body)
    if idempotency_key:
        earlier = await repo.decision_by_key(session, staff.id, idempotency_key)
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise Conflict("this Idempotency-Key was already used for a different request")
            return Decided(earlier, await get_item_or_404(session, item_id), replayed=True)
    item = await get_item_or_404(session, item_id)
    if (found := await _replay(session, staff, item, fingerprint)) is not None:
        return found
    _check_decidable(staff, item, body)
    now = utcnow()
    if item.claimed_by != staff.id or item.lease_expires_at is None or item.lease_expires_at <= now:
        if item.lease_expires_at is not None and item.lease_expires_at > now:
            raise Conflict("another moderator holds the lease on this item")
        raise Conflict("claim this item before deciding it (no lease, or your lease expired)")

    from_status = ItemStatus(item.status)
    if body.outcome == Outcome.escalate.value:
        values: dict[str, object] = {"status": ItemStatus.escalated.value}
    else:
        values = {"status": ItemStatus.decided.value, "decided_at": now, "priority": 0}
    decision_id = uuid.uuid4()
    values.update(claimed_by=None, lease_expires_at=None, latest_decision_id=decision_id)
    if not await repo.transition_leased(session, item.id, staff.id, now, from_status, values):
        item = await get_item_or_404(session, item_id)
        if (found := await _replay(session, staff, item, fingerprint)) is not None:
            return found
        raise Conflict("the item was decided or its lease changed meanwhile")

    flags = await repo.flags_of_item(session, item.id)
    outcome = Outcome(body.outcome)
    automated = AutomatedDecision.partially if any(f.automated_detection for f in flags) else \
        AutomatedDecision.not_automated
    decision = new_decision(
        item, flags, outcome=outcome, actor_id=staff.id, actor_role=staff.role, automated=automated,
        reason=body.reason, explanation=body.explanation, internal_note=body.internal_note, action=body.action,
        duration_days=body.duration_days, visible=outcome == Outcome.confirm,
    )
    decision.id = decision_id
    decision.idempotency_key = idempotency_key
    decision.request_hash = fingerprint
    await repo.add(session, decision)
    if outcome == Outcome.escalate:
        await events_log.append(session, EventKind.escalated, actor_id=staff.id, actor_role=staff.role,
                                item_id=item.id, decision_id=decision.id, subject_user_id=item.user_id,
                                reason=body.reason)
    elif outcome == Outcome.dismiss:
        await _dismiss(session, staff, item, decision)
    else:
        await _confirm(session, staff, item, decision, body)
    if outcome != Outcome.escalate:
        await events_log.append(session, EventKind.decided, actor_id=staff.id, actor_role=staff.role,
                                item_id=item.id, decision_id=decision.id, subject_user_id=item.user_id,
                                outcome=outcome.value, action=decision.action, duration_days=decision.duration_days,
                                strike_number=decision.strike_number)
        observe_after_commit(session, TIME_TO_DECISION, seconds_since(item.created_at), automated=automated.value)
    await session.flush()
    return Decided(decision, await get_item_or_404(session, item_id), replayed=False)


def _check_decidable(staff: User, item: ReviewItem, body: DecisionIn) -> None:
    if item.status == ItemStatus.decided.value:
        raise Conflict("this item is already decided")
    if item.status == ItemStatus.appealed.value:
        raise Conflict("this item is under appeal; decide the appeal instead")
    check_may_claim(staff, item)
    if item.status == ItemStatus.escalated.value and body.outcome == Outcome.escalate.value:
        raise Conflict("this item is already escalated")


async def _dismiss(session: AsyncSession, staff: User, item: ReviewItem, decision: Decision) -> None:
    """No violation: lift what the policy restricted automatically; the user is told."""
    restrictions = await repo.active_restrictions_of_item(session, item.id)
    for r in restrictions:
        await enforcement.lift(session, r, item, actor_id=staff.id, actor_role=staff.role,
                               reason="dismissed by a moderator")
    if restrictions:
        decision.visible_to_user = True
        decision.explanation = decision.explanation or DISMISS_EXPLANATION
    await _settle_item_appeals(session, staff, item, AppealStatus.overturned, decision)


async def _confirm(session: AsyncSession, staff: User, item: ReviewItem, decision: Decision,
                   body: DecisionIn) -> None:
    """A violation: count a strike, apply the chosen action and whatever the strike table adds,
    then retire the automated restriction this review replaces."""
    assert body.action is not None
    automated_restrictions = await repo.active_restrictions_of_item(session, item.id)
    applied = []
    chosen = strikes.account_part(body.action, body.duration_days)
    applied.append(await enforcement.apply(
        session, item=item, decision=decision, action=body.action, days=body.duration_days, automated=False,
        actor_id=staff.id, actor_role=staff.role, reason=body.reason, source="moderator"))
    if item.user_id is not None:
        n = await strikes.add_strike(session, item.user_id, decision.id)
        table_action, table_days = strikes.action_for(get_runtime().settings.strike_table, n)
        decision.strike_number = n
        decision.strike_action = strikes.AccountAction(table_action, table_days).label() \
            if table_action in (Action.suspend, Action.ban) else table_action.value
        await events_log.append(session, EventKind.strike_added, actor_id=staff.id, actor_role=staff.role,
                                item_id=item.id, decision_id=decision.id, subject_user_id=item.user_id,
                                strike_number=n, table_action=decision.strike_action)
        from_table = strikes.account_part(table_action, table_days)
        if from_table.rank > chosen.rank and from_table.action is not None:
            applied.append(await enforcement.apply(
                session, item=item, decision=decision, action=from_table.action, days=from_table.days,
                automated=False, actor_id=staff.id, actor_role=staff.role,
                reason=f"strike {n}: {decision.strike_action}", source="strike_table"))
    decision.applied = applied
    for r in automated_restrictions:
        await enforcement.lift(session, r, item, actor_id=staff.id, actor_role=staff.role,
                               reason="replaced by a moderator's decision")
    await _settle_item_appeals(session, staff, item, AppealStatus.upheld, decision)


async def _settle_item_appeals(session: AsyncSession, staff: User, item: ReviewItem, status: AppealStatus,
                               decision: Decision) -> None:
    """Appeals against an automated restriction are answered by the human review of the item."""
    for appeal in await repo.open_appeals_of_item(session, item.id):
        await repo.resolve_appeal(session, appeal.id, {
            "status": status.value, "decided_by": staff.id, "decided_at": utcnow(),
            "outcome_reason": decision.reason,
            "outcome_explanation": decision.explanation or DISMISS_EXPLANATION,
        })
        kind = EventKind.overturned if status == AppealStatus.overturned else EventKind.appeal_upheld
        await events_log.append(session, kind, actor_id=staff.id, actor_role=staff.role, item_id=item.id,
                                decision_id=decision.id, appeal_id=appeal.id, subject_user_id=item.user_id,
                                via="item review")
