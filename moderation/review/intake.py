"""Flags enter review: the pipeline's ``flags_stored`` hook turns a slice's flags into one
queue item, and applies the policy's automated restriction for critical flags at once.

Runs in the pipeline's transaction (the item exists iff the flags do) and is idempotent: a
re-run of a slice announces no flag twice and restricts no one twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from classroom import repository as classroom_repo
from moderation.models import Flag
from moderation.review import enforcement, events_log, views
from moderation.review import repository as repo
from moderation.review.decisions import new_decision, top_flag
from moderation.review.events_log import EventKind
from moderation.review.models import Action, AutomatedDecision, ItemStatus, Outcome, ReviewItem
from storage.db import utcnow

log = logging.getLogger("classguard.moderation.review")

# The policy's ``auto_action`` → what is done until a moderator reviews it.
AUTO_ACTIONS: dict[str, Action] = {
    "mute": Action.mute,
    "suspend_pending_review": Action.suspend,  # no end date: until the review
    "end_class": Action.end_class,
}
AUTO_EXPLANATION = ("Our automated checks found content in your class that our policy treats as critical, and "
                    "restricted your account at once. A moderator will review it; if they find no violation, the "
                    "restriction is lifted.")


def _summarise(item: ReviewItem, flags: Sequence[Flag]) -> None:
    top = top_flag(list(flags))
    assert top is not None
    item.max_severity_rank = top.severity_rank
    item.category = top.category
    item.categories = views.join_tokens(f.category for f in flags)
    item.rule_ids = views.join_tokens(f.rule_id for f in flags)
    item.flag_count = len(flags)
    item.updated_at = utcnow()


async def on_flags_stored(session: AsyncSession, slice_id: uuid.UUID, flag_ids: Sequence[uuid.UUID]) -> None:
    """The ``moderation.events.flags_stored_hooks`` entry of review."""
    flags = await repo.flags_of_slice(session, slice_id)
    if not flags:
        return
    sl = await classroom_repo.get_slice(session, slice_id)
    item = await repo.get_item_by_slice(session, slice_id)
    if item is None:
        first = flags[0]
        item = ReviewItem(
            id=uuid.uuid4(), created_at=utcnow(), slice_id=slice_id,
            user_id=sl.user_id if sl else first.user_id, class_id=sl.class_id if sl else first.class_id,
            session_id=sl.session_id if sl else first.session_id, source=sl.source if sl else first.source,
            status=ItemStatus.new.value, priority=0, category=first.category,
        )
        _summarise(item, flags)
        await repo.add(session, item)
        known: set[str] = set()
    else:
        known = await repo.logged_flag_ids(session, item.id)
        _summarise(item, flags)
        await session.flush()
    fresh = [f for f in flags if str(f.id) not in known]
    if not fresh:
        return
    if item.status == ItemStatus.decided.value:
        await repo.update_item(session, item.id, {"status": ItemStatus.new.value, "decided_at": None,
                                                  "updated_at": utcnow()})
        await events_log.append(session, EventKind.item_reopened, actor_id=None, actor_role="system",
                                item_id=item.id, subject_user_id=item.user_id, new_flags=len(fresh))
        item = await repo.get_item(session, item.id) or item
    for f in fresh:
        await events_log.append(session, EventKind.flag_created, actor_id=None, actor_role="system", item_id=item.id,
                                subject_user_id=item.user_id, flag_id=f.id, category=f.category, rule_id=f.rule_id,
                                rule_version=f.rule_version, severity=f.severity, auto_action=f.auto_action)
    await _restrict_automatically(session, item, flags, fresh)


async def _restrict_automatically(session: AsyncSession, item: ReviewItem, flags: Sequence[Flag],
                                  fresh: Sequence[Flag]) -> None:
    wanted = {f.auto_action for f in fresh if f.auto_action}
    unknown = wanted - AUTO_ACTIONS.keys()
    if unknown:
        log.warning("policy asks for unknown automated actions %s; the item is only prioritised", sorted(unknown))
    actions = [AUTO_ACTIONS[a] for a in sorted(wanted & AUTO_ACTIONS.keys())]
    if not wanted:
        return
    await repo.update_item(session, item.id, {"priority": 1})
    active = {r.kind for r in await repo.active_restrictions_of_item(session, item.id)}
    actions = [a for a in actions if a.value not in active]
    if not actions or item.user_id is None:
        return
    triggering = [f for f in fresh if f.auto_action]
    decision = new_decision(
        item, triggering or list(flags), outcome=Outcome.restrict, actor_id=None, actor_role="system",
        automated=AutomatedDecision.fully, reason="policy: automated restriction for a critical rule",
        explanation=AUTO_EXPLANATION, action=actions[0],
    )
    await repo.add(session, decision)
    applied = []
    for action in actions:
        applied.append(await enforcement.apply(
            session, item=item, decision=decision, action=action, days=None, automated=True, actor_id=None,
            actor_role="system", reason="automated restriction pending review", source="policy"))
    decision.applied = applied
    await repo.update_item(session, item.id, {"latest_decision_id": decision.id})
    await events_log.append(session, EventKind.decided, actor_id=None, actor_role="system", item_id=item.id,
                            decision_id=decision.id, subject_user_id=item.user_id, outcome=Outcome.restrict.value,
                            actions=[a.value for a in actions], automated=True)
    await session.flush()
