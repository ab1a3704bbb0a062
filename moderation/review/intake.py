"""Flags enter review: the pipeline's ``flags_stored`` hook puts a slice's new flags into cases
(one per participant, live session and category, growing while the class runs), nudges the
speaker when the policy says so, and applies the automated restriction for critical flags.

A case gathers flags until it is decided; a hit after the decision opens a new case. Runs in
the pipeline's transaction (the case holds the flags iff they are stored) and is idempotent: a
re-run of a slice places no flag twice, nudges no one twice and restricts no one twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from classroom import repository as classroom_repo
from classroom.models import Slice
from moderation.models import Flag
from moderation.policy_store import active_policy
from moderation.review import enforcement, events_log, live_nudge, views
from moderation.review import repository as repo
from moderation.review.decisions import new_decision, top_flag
from moderation.review.events_log import EventKind
from moderation.review.models import Action, AutomatedDecision, CaseFlag, ItemStatus, Outcome, ReviewItem
from storage.db import utcnow
from storage.runtime import get_runtime

log = logging.getLogger("classguard.moderation.review")

# The policy's ``auto_action`` → what is done until a moderator reviews it.
AUTO_ACTIONS: dict[str, Action] = {
    "mute": Action.mute,
    "suspend_pending_review": Action.suspend,  # no end date: until the review
    "end_class": Action.end_class,
}
# ``live_action: nudge_restrict`` adds this automated restriction to the notice.
NUDGE_RESTRICTION = "mute"
AUTO_EXPLANATION = ("Our automated checks found content in your class that our policy treats as critical, and "
                    "restricted your account at once. A moderator will review it; if they find no violation, the "
                    "restriction is lifted.")


def case_key(sl: Slice | None, flag: Flag) -> str:
    """Which case a flag joins: its participant's, in its live session, for its category. A flag
    outside a live session (no session or no participant) stays with its slice."""
    session_id = sl.session_id if sl else flag.session_id
    user_id = sl.user_id if sl else flag.user_id
    if session_id is None or user_id is None:
        return f"slice:{flag.slice_id}:{flag.category}"
    return f"{session_id}:{user_id}:{flag.category}"


def _hit_time(sl: Slice | None, flag: Flag) -> datetime:
    return (sl.started_at if sl else flag.created_at) + timedelta(milliseconds=flag.start_ms)


def _summarise(item: ReviewItem, flags: Sequence[Flag], slice_count: int, last_at: datetime | None) -> None:
    top = top_flag(list(flags))
    assert top is not None
    item.max_severity_rank = top.severity_rank
    item.categories = views.join_tokens(f.category for f in flags)
    item.rule_ids = views.join_tokens(f.rule_id for f in flags)
    item.flag_count = len(flags)
    item.slice_count = slice_count
    item.last_flag_at = last_at
    item.updated_at = utcnow()


async def on_flags_stored(session: AsyncSession, slice_id: uuid.UUID, flag_ids: Sequence[uuid.UUID]) -> None:
    """The ``moderation.events.flags_stored_hooks`` entry of review."""
    flags = await repo.flags_of_slice(session, slice_id)
    placed = await repo.placed_flag_ids(session, [f.id for f in flags])
    fresh = [f for f in flags if f.id not in placed]
    if not fresh:
        return
    sl = await classroom_repo.get_slice(session, slice_id)
    policy, _ = await active_policy(session, get_runtime().settings)
    by_key: dict[str, list[Flag]] = {}
    for f in fresh:
        by_key.setdefault(case_key(sl, f), []).append(f)
    for key in sorted(by_key):
        joining = by_key[key]
        item = await _case_for(session, key, sl, joining[0])
        await _join(session, item, sl, joining)
        restricting = await live_nudge.nudge(session, item, joining, policy)
        await _restrict_automatically(session, item, joining, restricting)


async def _case_for(session: AsyncSession, key: str, sl: Slice | None, first: Flag) -> ReviewItem:
    """The case this key's flags gather in: the undecided one, or a new one."""
    for _ in range(2):
        item = await repo.gathering_case(session, key)
        if item is not None:
            return item
        item = ReviewItem(
            id=uuid.uuid4(), created_at=utcnow(), slice_id=first.slice_id, case_key=key,
            user_id=sl.user_id if sl else first.user_id, class_id=sl.class_id if sl else first.class_id,
            session_id=sl.session_id if sl else first.session_id, source=sl.source if sl else first.source,
            status=ItemStatus.new.value, priority=0, category=first.category, max_severity_rank=first.severity_rank,
            categories=views.join_tokens([first.category]), rule_ids="|", flag_count=0, slice_count=0,
        )
        if await repo.insert_case(session, item):
            return item
    raise RuntimeError(f"could not open or find the case {key}")


async def _join(session: AsyncSession, item: ReviewItem, sl: Slice | None, joining: Sequence[Flag]) -> None:
    rows = [CaseFlag(flag_id=f.id, item_id=item.id, slice_id=f.slice_id, at=_hit_time(sl, f), added_at=utcnow())
            for f in joining]
    await repo.add_case_flags(session, rows)
    flags = await repo.flags_of_item(session, item.id)
    slices = await repo.slice_ids_of_item(session, item.id)
    last_at = max([r.at for r in rows] + ([item.last_flag_at] if item.last_flag_at else []))
    _summarise(item, flags, len(slices), last_at)
    await session.flush()
    for f in joining:
        await events_log.append(session, EventKind.flag_created, actor_id=None, actor_role="system", item_id=item.id,
                                subject_user_id=item.user_id, flag_id=f.id, slice_id=f.slice_id,
                                category=f.category, rule_id=f.rule_id, rule_version=f.rule_version,
                                severity=f.severity, auto_action=f.auto_action)


async def _restrict_automatically(session: AsyncSession, item: ReviewItem, fresh: Sequence[Flag],
                                  nudge_restricting: Sequence[Flag]) -> None:
    wanted = {f.auto_action for f in fresh if f.auto_action}
    if nudge_restricting:
        wanted.add(NUDGE_RESTRICTION)
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
    triggering = [f for f in fresh if f.auto_action] + [f for f in nudge_restricting if not f.auto_action]
    decision = new_decision(
        item, triggering or list(fresh), outcome=Outcome.restrict, actor_id=None, actor_role="system",
        automated=AutomatedDecision.fully,
        reason="policy: automated restriction for a critical rule" if any(f.auto_action for f in fresh)
        else "policy: automated restriction with the live nudge (live_action nudge_restrict)",
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
