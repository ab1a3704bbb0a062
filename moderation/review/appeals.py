"""Appeals: the affected user contests a decision once, with a text; a staff member other than
the one who decided answers it. Upholding keeps the action; overturning lifts it and clears
the strike it counted.

An appeal against an automated restriction (a critical flag restricted the user at once) joins
the item already at the top of the queue, and the moderator's review of that item answers it.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from moderation.review import enforcement, events_log, strikes
from moderation.review import repository as repo
from moderation.review.auth import check_may_claim, check_owns_decision
from moderation.review.events_log import EventKind
from moderation.review.models import Appeal, AppealStatus, Decision, ItemStatus, Outcome, ReviewItem
from moderation.review.schemas import AppealDecisionIn, AppealIn
from moderation.review.service import get_item_or_404
from storage.access_log.service import record_access
from storage.db import utcnow
from storage.errors import Conflict, NotFound, Unprocessable


async def file_appeal(session: AsyncSession, user: User, body: AppealIn) -> Appeal:
    decision = check_owns_decision(user, await repo.get_decision(session, body.decision_id))
    if await repo.appeal_of_decision(session, decision.id) is not None:
        raise Conflict("you have already appealed this decision")
    item = await get_item_or_404(session, decision.item_id) if decision.item_id else None
    if item is None:
        raise Unprocessable("this decision can no longer be appealed")
    if decision.outcome == Outcome.restrict.value:
        if not await repo.active_restrictions_of_item(session, item.id):
            raise Unprocessable("this automated restriction has already been reviewed and lifted")
    elif decision.outcome != Outcome.confirm.value:
        raise Unprocessable("this decision imposed nothing on you; there is nothing to appeal")
    elif item.latest_decision_id != decision.id or item.status != ItemStatus.decided.value:
        raise Unprocessable("this decision is no longer the one in force on its case")
    appeal = Appeal(decision_id=decision.id, item_id=item.id, user_id=user.id, text=body.text.strip())
    await repo.add(session, appeal)
    if decision.outcome == Outcome.confirm.value:
        # Back into the queue, for anyone but the moderator who decided.
        await repo.update_item(session, item.id, {
            "status": ItemStatus.appealed.value, "excluded_moderator_id": decision.actor_id,
            "claimed_by": None, "lease_expires_at": None, "updated_at": utcnow(),
        })
    await events_log.append(session, EventKind.appealed, actor_id=user.id, actor_role=user.role, item_id=item.id,
                            decision_id=decision.id, appeal_id=appeal.id, subject_user_id=user.id)
    return appeal


async def get_appeal_for(session: AsyncSession, user: User, appeal_id: uuid.UUID, staff: bool) -> Appeal:
    """The appeal for its author, or for staff (a staff read of the text is access-logged)."""
    appeal = await repo.get_appeal(session, appeal_id)
    if appeal is None or (not staff and appeal.user_id != user.id):
        raise NotFound("appeal not found")
    if staff and appeal.user_id != user.id:
        await record_access(session, actor_id=user.id, actor_role=user.role, action="read", resource_type="appeal",
                            resource_id=appeal.id, subject_id=appeal.user_id,
                            reason=f"appeal handling (appeal {appeal.id})")
    return appeal


async def decide_appeal(session: AsyncSession, staff: User, appeal_id: uuid.UUID,
                        body: AppealDecisionIn) -> tuple[Appeal, ReviewItem, bool]:
    """Uphold or overturn. Returns (appeal, item, replayed)."""
    appeal = await repo.get_appeal(session, appeal_id)
    if appeal is None or appeal.item_id is None:
        raise NotFound("appeal not found")
    item = await get_item_or_404(session, appeal.item_id)
    wanted = AppealStatus.upheld if body.outcome == "uphold" else AppealStatus.overturned
    if appeal.status != AppealStatus.open.value:
        if appeal.decided_by == staff.id and appeal.status == wanted.value and appeal.outcome_reason == body.reason:
            return appeal, item, True
        raise Conflict("this appeal is already decided")
    decision = await repo.get_decision(session, appeal.decision_id)
    assert decision is not None
    if decision.outcome != Outcome.confirm.value:
        raise Conflict("this appeal contests an automated restriction; it is answered by deciding the item")
    check_may_claim(staff, item)
    now = utcnow()
    if not await repo.transition_leased(session, item.id, staff.id, now, ItemStatus.appealed, {
        "status": ItemStatus.decided.value, "claimed_by": None, "lease_expires_at": None,
        "excluded_moderator_id": None, "decided_at": now, "priority": 0,
    }):
        fresh = await repo.get_appeal(session, appeal_id)
        if fresh is not None and fresh.status == wanted.value and fresh.decided_by == staff.id:
            return fresh, await get_item_or_404(session, item.id), True
        raise Conflict("claim this item before deciding its appeal (no lease, someone else's, or expired)")
    await repo.resolve_appeal(session, appeal.id, {
        "status": wanted.value, "decided_by": staff.id, "decided_at": now,
        "outcome_reason": body.reason.strip(), "outcome_explanation": body.explanation.strip(),
    })
    if wanted == AppealStatus.overturned:
        await _overturn(session, staff, item, decision, appeal)
    else:
        await events_log.append(session, EventKind.appeal_upheld, actor_id=staff.id, actor_role=staff.role,
                                item_id=item.id, decision_id=decision.id, appeal_id=appeal.id,
                                subject_user_id=decision.subject_user_id, reason=body.reason)
    return await repo.get_appeal(session, appeal_id) or appeal, await get_item_or_404(session, item.id), False


async def _overturn(session: AsyncSession, staff: User, item: ReviewItem, decision: Decision,
                    appeal: Appeal) -> None:
    for r in await repo.restrictions_of_decision(session, decision.id):
        await enforcement.lift(session, r, item, actor_id=staff.id, actor_role=staff.role,
                               reason="overturned on appeal")
    strike = await strikes.clear_strike(session, decision.id, appeal.id)
    if strike is not None:
        await events_log.append(session, EventKind.strike_cleared, actor_id=staff.id, actor_role=staff.role,
                                item_id=item.id, decision_id=decision.id, appeal_id=appeal.id,
                                subject_user_id=strike.user_id)
    await events_log.append(session, EventKind.overturned, actor_id=staff.id, actor_role=staff.role,
                            item_id=item.id, decision_id=decision.id, appeal_id=appeal.id,
                            subject_user_id=decision.subject_user_id)
