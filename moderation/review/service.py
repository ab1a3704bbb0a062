"""Rules of the review queue: listing, claiming with a lease, renewing, releasing, and the full
picture of an item (slice, transcript with hits, screen evidence, participant history).

A lease is a column pair (``claimed_by``, ``lease_expires_at``) changed only by single
conditional UPDATEs, so two moderators can never hold the same item; an expired lease simply
stops counting, which returns the item to the queue. Services flush, never commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from classroom import repository as classroom_repo
from classroom.models import Slice
from moderation.review import events_log, views
from moderation.review import repository as repo
from moderation.review.auth import check_may_claim, is_admin
from moderation.review.events_log import EventKind
from moderation.review.metrics import TIME_TO_FIRST_CLAIM, observe_after_commit, seconds_since
from moderation.review.models import ItemStatus, ReviewItem
from moderation.review.repository import QueueFilter
from moderation.review.schemas import (
    SEVERITY_LABELS,
    ClassInfoOut,
    EventOut,
    HistoryItemOut,
    HistoryOut,
    ItemDetail,
    LeaseOut,
    QueuePage,
    SliceOut,
)
from storage.access_log.service import record_access
from storage.db import utcnow
from storage.errors import Conflict, NotFound
from storage.runtime import get_runtime

HISTORY_LIMIT = 20


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=get_runtime().settings.lease_seconds)


async def get_item_or_404(session: AsyncSession, item_id: uuid.UUID) -> ReviewItem:
    item = await repo.get_item(session, item_id)
    if item is None:
        raise NotFound("review item not found")
    return item


async def list_queue(session: AsyncSession, f: QueueFilter, limit: int, offset: int) -> QueuePage:
    now = utcnow()
    items = await repo.list_queue(session, f, now, limit + 1, offset)
    more = len(items) > limit
    items = items[:limit]
    users = await repo.users_by_ids(session, [i.user_id for i in items])
    return QueuePage(items=[views.queue_item(i, now, users) for i in items],
                     next_offset=offset + limit if more else None)


def _leased_by_other(item: ReviewItem, user: User, now: datetime) -> bool:
    return (item.claimed_by is not None and item.claimed_by != user.id
            and item.lease_expires_at is not None and item.lease_expires_at > now)


async def _after_claim(session: AsyncSession, staff: User, item_id: uuid.UUID, now: datetime,
                       prev_holder: uuid.UUID | None, prev_until: datetime | None) -> ReviewItem:
    """Log the claim (and the expiry of the lease it replaced) and record time to first claim."""
    item = await get_item_or_404(session, item_id)
    renewed = prev_holder == staff.id and prev_until is not None and prev_until > now
    if prev_holder is not None and prev_until is not None and prev_until <= now:
        await events_log.append(session, EventKind.lease_expired, actor_id=None, actor_role="system",
                                item_id=item.id, subject_user_id=item.user_id, previous_holder=prev_holder,
                                expired_at=prev_until)
    await events_log.append(session, EventKind.lease_renewed if renewed else EventKind.claimed,
                            actor_id=staff.id, actor_role=staff.role, item_id=item.id,
                            subject_user_id=item.user_id, lease_expires_at=item.lease_expires_at)
    if item.first_claimed_at == now:
        observe_after_commit(session, TIME_TO_FIRST_CLAIM, seconds_since(item.created_at))
    return item


async def claim(session: AsyncSession, staff: User, item_id: uuid.UUID) -> ReviewItem:
    """Take the lease of one item (or renew it, if it is already ours)."""
    item = await get_item_or_404(session, item_id)
    check_may_claim(staff, item)
    if item.status == ItemStatus.decided.value:
        raise Conflict("this item is already decided")
    now = utcnow()
    prev_holder, prev_until = item.claimed_by, item.lease_expires_at
    if not await repo.claim_item(session, item.id, staff.id, is_admin(staff), now, _lease_until(now)):
        item = await get_item_or_404(session, item_id)
        if item.status == ItemStatus.decided.value:
            raise Conflict("this item is already decided")
        if _leased_by_other(item, staff, now):
            raise Conflict(f"another moderator is working on this item (lease until {item.lease_expires_at})")
        check_may_claim(staff, item)
        raise Conflict("the item changed while claiming it; try again")
    return await _after_claim(session, staff, item.id, now, prev_holder, prev_until)


async def claim_next(session: AsyncSession, staff: User, f: QueueFilter) -> ReviewItem | None:
    """Take the lease of the first free item this moderator may work, or None if there is none."""
    for _ in range(5):
        now = utcnow()
        found = await repo.next_claimable(session, f, staff.id, is_admin(staff), now)
        if found is None:
            return None
        item_id, prev_holder = found
        prev = await repo.get_item(session, item_id)
        prev_until = prev.lease_expires_at if prev else None
        # Same predicate again: on SQLite nothing was locked, so someone may have been faster.
        if await repo.claim_item(session, item_id, staff.id, is_admin(staff), now, _lease_until(now)):
            return await _after_claim(session, staff, item_id, now, prev_holder, prev_until)
    return None


async def renew(session: AsyncSession, staff: User, item_id: uuid.UUID) -> LeaseOut:
    item = await get_item_or_404(session, item_id)
    now = utcnow()
    if not await repo.renew_lease(session, item.id, staff.id, now, _lease_until(now)):
        raise Conflict("you do not hold a live lease on this item; claim it again")
    item = await get_item_or_404(session, item_id)
    await events_log.append(session, EventKind.lease_renewed, actor_id=staff.id, actor_role=staff.role,
                            item_id=item.id, subject_user_id=item.user_id, lease_expires_at=item.lease_expires_at)
    assert item.lease_expires_at is not None
    return LeaseOut(item_id=item.id, lease_expires_at=item.lease_expires_at)


async def release(session: AsyncSession, staff: User, item_id: uuid.UUID) -> ReviewItem:
    """Give an item back to the queue. Releasing what you no longer hold is a no-op (idempotent)."""
    item = await get_item_or_404(session, item_id)
    if await repo.release_lease(session, item.id, staff.id, utcnow()):
        await events_log.append(session, EventKind.released, actor_id=staff.id, actor_role=staff.role,
                                item_id=item.id, subject_user_id=item.user_id)
        item = await get_item_or_404(session, item_id)
    return item


# Events of a case that belong on its timeline beside the hits (claims and leases do not).
TIMELINE_EVENTS = frozenset({
    EventKind.live_nudge, EventKind.decided, EventKind.escalated, EventKind.restriction_applied,
    EventKind.restriction_lifted, EventKind.appealed, EventKind.appeal_upheld, EventKind.overturned,
})
TIMELINE_EVENT_LIMIT = 1000


def _slice_out(sl: Slice) -> SliceOut:
    return SliceOut(id=sl.id, source=sl.source, content_type=sl.content_type, started_at=sl.started_at,
                    ended_at=sl.ended_at, duration_s=sl.duration_s, media_available=sl.media_deleted_at is None)


async def item_detail(session: AsyncSession, staff: User, item: ReviewItem, reason: str | None = None,
                      slice_id: uuid.UUID | None = None) -> ItemDetail:
    """Everything on one case: its slices and every hit on one timeline (with the live nudges,
    restrictions and decisions), one slice in full (``slice_id``, default the first: transcript
    with hits, screen evidence), the class and its teacher, the participant's earlier cases and
    decisions.

    The transcript and screen text are personal data: the read goes to the access log, with the
    moderator's reason or, by default, the review of this item as the purpose.
    """
    now = utcnow()
    slice_ids = await repo.slice_ids_of_item(session, item.id) or [item.slice_id]
    shown_id = slice_id or slice_ids[0]
    if shown_id not in slice_ids:
        raise NotFound("this slice is not part of the case")
    await record_access(
        session, actor_id=staff.id, actor_role=staff.role, action="read", resource_type="transcript",
        resource_id=shown_id, subject_id=item.user_id,
        reason=reason or f"moderation review of flagged item {item.id}",
    )
    entries = await repo.case_timeline(session, item.id)
    flags = [f for _, f in entries]
    shown_flags = [f for f in flags if f.slice_id == shown_id]
    analysis = await repo.analysis_of(session, shown_id)
    slices = [sl for sl in [await classroom_repo.get_slice(session, i) for i in slice_ids] if sl is not None]
    sl = next((s for s in slices if s.id == shown_id), None)
    cls = await classroom_repo.get_class(session, item.class_id) if item.class_id else None
    users = await repo.users_by_ids(session, [item.user_id, cls.teacher_id if cls else None])
    decisions = await repo.decisions_of_item(session, item.id)
    appeals = await repo.appeals_of_decisions(session, [d.id for d in decisions])
    open_appeals = await repo.open_appeals_of_item(session, item.id)
    base = views.queue_item(item, now, users)
    events = [e for e in await repo.events_of_item(session, item.id, TIMELINE_EVENT_LIMIT)
              if e.kind in TIMELINE_EVENTS]
    detail = ItemDetail(
        **base.model_dump(),
        you_hold_lease=item.claimed_by == staff.id and item.lease_expires_at is not None
        and item.lease_expires_at > now,
        slice=_slice_out(sl) if sl else None,
        slices=[_slice_out(s) for s in slices],
        timeline=views.timeline(entries, events),
        class_=ClassInfoOut(id=cls.id, title=cls.title, teacher=views.person(users.get(cls.teacher_id)))
        if cls else None,
        session_id=item.session_id,
        flags=[views.flag_out(f) for f in flags],
        transcript=views.transcript(analysis, shown_flags),
        ocr=views.ocr_lines(analysis),
        screen=views.screen_evidence(shown_flags),
        history=await history(session, item),
        decisions=[views.decision_staff(d, appeals.get(d.id)) for d in decisions],
        open_appeal=views.appeal_staff(open_appeals[0]) if open_appeals else None,
        restrictions=[views.restriction_out(r) for r in await repo.active_restrictions_of_item(session, item.id)],
    )
    await log_detail_reads(session, staff, item, detail, reason or f"moderation review of flagged item {item.id}")
    return detail


async def log_detail_reads(session: AsyncSession, staff: User, item: ReviewItem, detail: ItemDetail,
                           reason: str) -> None:
    """The item detail shows more than this slice: the participant's history (quotes from their
    other slices, other decisions with their notes) and appeal texts. Each is a read of its own."""
    if item.user_id is None:
        return
    history_ = detail.history
    if history_.items or history_.decisions:
        await record_access(session, actor_id=staff.id, actor_role=staff.role, action="read",
                            resource_type="moderation_history", resource_id=item.user_id, subject_id=item.user_id,
                            reason=reason)
    shown = [d.appeal for d in [*detail.decisions, *history_.decisions] if d.appeal]
    if detail.open_appeal is not None:
        shown.append(detail.open_appeal)
    for appeal_id in dict.fromkeys(a.id for a in shown):
        await record_access(session, actor_id=staff.id, actor_role=staff.role, action="read",
                            resource_type="appeal", resource_id=appeal_id, subject_id=item.user_id, reason=reason)


async def history(session: AsyncSession, item: ReviewItem) -> HistoryOut:
    """The participant's earlier cases and the decisions about them."""
    if item.user_id is None:
        return HistoryOut(items=[], decisions=[], active_strikes=0)
    earlier = await repo.items_of_user(session, item.user_id, item.id, HISTORY_LIMIT)
    quotes = await repo.quotes_of_items(session, [i.id for i in earlier], per_item=3)
    now = utcnow()
    decisions = [d for d in await repo.decisions_about(session, item.user_id, visible_only=False,
                                                        limit=HISTORY_LIMIT) if d.item_id != item.id]
    appeals = await repo.appeals_of_decisions(session, [d.id for d in decisions])
    return HistoryOut(
        items=[HistoryItemOut(item_id=i.id, created_at=i.created_at, status=views.display_status(i, now).value,
                              severity=SEVERITY_LABELS.get(i.max_severity_rank, "?"),
                              categories=views.split_tokens(i.categories), flag_count=i.flag_count,
                              quotes=quotes.get(i.id, [])) for i in earlier],
        decisions=[views.decision_staff(d, appeals.get(d.id)) for d in decisions],
        active_strikes=await repo.active_strikes(session, item.user_id),
    )


async def item_events(session: AsyncSession, staff: User, item_id: uuid.UUID, limit: int,
                      offset: int = 0) -> list[EventOut]:
    """The item's event log; it holds the moderators' reasons about the participant (access-logged)."""
    item = await get_item_or_404(session, item_id)
    if item.user_id is not None:
        await record_access(session, actor_id=staff.id, actor_role=staff.role, action="read",
                            resource_type="moderation_events", resource_id=item.id, subject_id=item.user_id,
                            reason=f"moderation review of flagged item {item.id}")
    return [EventOut(seq=e.seq, at=e.at, kind=e.kind, actor_id=e.actor_id, actor_role=e.actor_role,
                     decision_id=e.decision_id, appeal_id=e.appeal_id, data=dict(e.data or {}))
            for e in await repo.events_of_item(session, item_id, limit, offset)]
