"""All SQL of human review. The queue's hot paths (list, claim, claim next) are single
statements shaped to use the partial index ``ix_review_items_queue``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from moderation.models import Flag, SliceAnalysis
from moderation.review.models import (
    GATHERING_STATUSES,
    Appeal,
    AppealSession,
    AppealStatus,
    CaseFlag,
    Decision,
    DisplayStatus,
    ItemStatus,
    ModerationEvent,
    RecordingOpen,
    Restriction,
    ReviewItem,
    Strike,
)

Item = ReviewItem
# Literal (not bound) status predicates: the planner can then prove that a query implies the
# partial index's WHERE clause, also under cached generic plans.
_OPEN: ColumnElement[bool] = sa.literal_column(
    "moderation_review_items.status IN ('new', 'escalated', 'appealed')", sa.Boolean())


def _status_is(status: ItemStatus) -> ColumnElement[bool]:
    return sa.literal_column("moderation_review_items.status") == sa.literal_column(f"'{status.value}'")


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return sa.or_(Item.lease_expires_at.is_(None), Item.lease_expires_at <= now)


QUEUE_ORDER = (Item.priority.desc(), Item.max_severity_rank.desc(), Item.created_at.asc(), Item.id.asc())


async def add(session: AsyncSession, obj: object) -> None:
    session.add(obj)
    await session.flush()


# --- items -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilter:
    """What a moderator narrows the queue to; every field is optional."""

    category: str | None = None
    rule_id: str | None = None
    class_id: uuid.UUID | None = None
    participant_id: uuid.UUID | None = None
    status: DisplayStatus | None = None


def _like_token(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%|{escaped}|%"


def _filter_clauses(f: QueueFilter, now: datetime) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if f.status is None:
        clauses.append(_OPEN)
    elif f.status == DisplayStatus.in_review:
        clauses += [_OPEN, Item.lease_expires_at > now]
    elif f.status == DisplayStatus.decided:
        clauses.append(_status_is(ItemStatus.decided))
    else:
        clauses += [_OPEN, _status_is(ItemStatus(f.status.value)), _lease_free(now)]
    if f.category:
        clauses.append(Item.categories.like(_like_token(f.category), escape="\\"))
    if f.rule_id:
        clauses.append(Item.rule_ids.like(_like_token(f.rule_id), escape="\\"))
    if f.class_id:
        clauses.append(Item.class_id == f.class_id)
    if f.participant_id:
        clauses.append(Item.user_id == f.participant_id)
    return clauses


async def list_queue(session: AsyncSession, f: QueueFilter, now: datetime, limit: int, offset: int) -> list[Item]:
    """One page of the queue: most restricted first, then most severe, then oldest."""
    order = (Item.decided_at.desc(), Item.id.asc()) if f.status == DisplayStatus.decided else QUEUE_ORDER
    stmt = sa.select(Item).where(*_filter_clauses(f, now)).order_by(*order).limit(limit).offset(offset)
    return list((await session.scalars(stmt)).all())


def _claimable(user_id: uuid.UUID, is_admin: bool) -> ColumnElement[bool]:
    """Which open items this staff member may take: escalations are for admins; an appeal is
    for anyone but the moderator whose decision it contests."""
    allowed: list[ColumnElement[bool]] = [
        _status_is(ItemStatus.new),
        sa.and_(_status_is(ItemStatus.appealed),
                sa.or_(Item.excluded_moderator_id.is_(None), Item.excluded_moderator_id != user_id)),
    ]
    if is_admin:
        allowed.append(_status_is(ItemStatus.escalated))
    return sa.or_(*allowed)


async def get_item(session: AsyncSession, item_id: uuid.UUID) -> Item | None:
    return await session.get(Item, item_id, populate_existing=True)


async def get_item_by_slice(session: AsyncSession, slice_id: uuid.UUID) -> Item | None:
    """The first case that holds a flag of this slice."""
    stmt = (sa.select(Item).join(CaseFlag, CaseFlag.item_id == Item.id).where(CaseFlag.slice_id == slice_id)
            .order_by(Item.created_at, Item.id).limit(1))
    return (await session.scalars(stmt)).first()


# --- cases --------------------------------------------------------------------------------------


async def gathering_case(session: AsyncSession, case_key: str) -> Item | None:
    """The undecided case of a (session, participant, category) key, which new flags join.

    Row-locked on PostgreSQL: slices of one case closing at once join it one after the other,
    so each recounts the case's flags with the others' committed (the summary is never stale)."""
    stmt = (sa.select(Item).where(Item.case_key == case_key, Item.status.in_(GATHERING_STATUSES))
            .with_for_update())
    return (await session.scalars(stmt.execution_options(populate_existing=True))).first()


async def insert_case(session: AsyncSession, item: Item) -> bool:
    """Insert a new case; False if another transaction opened the same key's case first.

    On PostgreSQL the insert runs in a savepoint, so losing the race costs nothing: the caller
    joins the winner's case. On SQLite writers are serialised, and the partial unique index
    still refuses a second case (the stage's transaction fails and is retried, and then joins).
    """
    if session.get_bind().dialect.name != "postgresql":
        session.add(item)
        await session.flush()
        return True
    try:
        async with session.begin_nested():
            session.add(item)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def placed_flag_ids(session: AsyncSession, flag_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these flags already are in a case (a re-run never places a flag twice)."""
    if not flag_ids:
        return set()
    stmt = sa.select(CaseFlag.flag_id).where(CaseFlag.flag_id.in_(list(flag_ids)))
    return set((await session.scalars(stmt)).all())


async def add_case_flags(session: AsyncSession, rows: Sequence[CaseFlag]) -> None:
    session.add_all(list(rows))
    await session.flush()


async def flags_of_item(session: AsyncSession, item_id: uuid.UUID) -> list[Flag]:
    """Every flag of a case, in the order they were said or shown."""
    stmt = (sa.select(Flag).join(CaseFlag, CaseFlag.flag_id == Flag.id).where(CaseFlag.item_id == item_id)
            .order_by(CaseFlag.at, Flag.start_ms, Flag.id))
    return list((await session.scalars(stmt)).all())


async def case_timeline(session: AsyncSession, item_id: uuid.UUID) -> list[tuple[CaseFlag, Flag]]:
    stmt = (sa.select(CaseFlag, Flag).join(Flag, Flag.id == CaseFlag.flag_id).where(CaseFlag.item_id == item_id)
            .order_by(CaseFlag.at, Flag.start_ms, Flag.id))
    return [(c, f) for c, f in (await session.execute(stmt)).all()]


async def slice_ids_of_item(session: AsyncSession, item_id: uuid.UUID) -> list[uuid.UUID]:
    """The case's slices, in the order their first hit came."""
    stmt = (sa.select(CaseFlag.slice_id, sa.func.min(CaseFlag.at).label("first")).where(CaseFlag.item_id == item_id)
            .group_by(CaseFlag.slice_id).order_by(sa.text("first")))
    return [r[0] for r in (await session.execute(stmt)).all()]


async def case_has_slice(session: AsyncSession, item_id: uuid.UUID, slice_id: uuid.UUID) -> bool:
    stmt = sa.select(CaseFlag.flag_id).where(CaseFlag.item_id == item_id, CaseFlag.slice_id == slice_id).limit(1)
    return (await session.scalars(stmt)).first() is not None


async def flag_sources_of_item(session: AsyncSession, item_id: uuid.UUID) -> set[str]:
    stmt = (sa.select(Flag.source).join(CaseFlag, CaseFlag.flag_id == Flag.id)
            .where(CaseFlag.item_id == item_id).distinct())
    return {str(s) for s in (await session.scalars(stmt)).all()}


async def quotes_of_items(session: AsyncSession, item_ids: Sequence[uuid.UUID],
                          per_item: int) -> dict[uuid.UUID, list[str]]:
    """A few distinct quotes of each case (for the participant's history)."""
    if not item_ids:
        return {}
    stmt = (sa.select(CaseFlag.item_id, Flag.quote).join(Flag, Flag.id == CaseFlag.flag_id)
            .where(CaseFlag.item_id.in_(list(item_ids)), Flag.quote != "").order_by(CaseFlag.at))
    out: dict[uuid.UUID, list[str]] = {}
    for item_id, quote in (await session.execute(stmt)).all():
        got = out.setdefault(item_id, [])
        if quote not in got and len(got) < per_item:
            got.append(quote)
    return out


async def last_event_of_item(session: AsyncSession, item_id: uuid.UUID, kind: str) -> ModerationEvent | None:
    stmt = (sa.select(ModerationEvent).where(ModerationEvent.item_id == item_id, ModerationEvent.kind == kind)
            .order_by(ModerationEvent.seq.desc()).limit(1))
    return (await session.scalars(stmt)).first()


async def claim_item(session: AsyncSession, item_id: uuid.UUID, user_id: uuid.UUID, is_admin: bool,
                     now: datetime, until: datetime) -> bool:
    """Atomically take (or renew) the lease of one item if it is free, expired or already ours."""
    stmt = (
        sa.update(Item)
        .where(Item.id == item_id, _OPEN, _claimable(user_id, is_admin),
               sa.or_(_lease_free(now), Item.claimed_by == user_id))
        .values(claimed_by=user_id, lease_expires_at=until, updated_at=now,
                first_claimed_at=sa.func.coalesce(Item.first_claimed_at, now))
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]


async def next_claimable(session: AsyncSession, f: QueueFilter, user_id: uuid.UUID, is_admin: bool,
                         now: datetime) -> tuple[uuid.UUID, uuid.UUID | None] | None:
    """The first free item this user may claim, row-locked on PostgreSQL with SKIP LOCKED so
    concurrent moderators each get a different one. Returns (item id, previous lease holder)."""
    clauses = [c for c in _filter_clauses(QueueFilter(f.category, f.rule_id, f.class_id, f.participant_id), now)]
    stmt = (
        sa.select(Item.id, Item.claimed_by)
        .where(*clauses, _lease_free(now), _claimable(user_id, is_admin))
        .order_by(*QUEUE_ORDER)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def renew_lease(session: AsyncSession, item_id: uuid.UUID, user_id: uuid.UUID, now: datetime,
                      until: datetime) -> bool:
    stmt = (
        sa.update(Item)
        .where(Item.id == item_id, _OPEN, Item.claimed_by == user_id, Item.lease_expires_at > now)
        .values(lease_expires_at=until, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]


async def release_lease(session: AsyncSession, item_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> bool:
    stmt = (
        sa.update(Item)
        .where(Item.id == item_id, _OPEN, Item.claimed_by == user_id, Item.lease_expires_at > now)
        .values(claimed_by=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]


async def transition_leased(session: AsyncSession, item_id: uuid.UUID, user_id: uuid.UUID, now: datetime,
                            from_status: ItemStatus, values: dict[str, Any]) -> bool:
    """Compare-and-set: change an item only while ``user_id`` holds its live lease and it is in
    ``from_status``. Two identical requests racing: exactly one wins."""
    stmt = (
        sa.update(Item)
        .where(Item.id == item_id, _status_is(from_status), Item.claimed_by == user_id,
               Item.lease_expires_at > now)
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]


async def update_item(session: AsyncSession, item_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(sa.update(Item).where(Item.id == item_id).values(**values)
                          .execution_options(synchronize_session=False))


async def items_of_user(session: AsyncSession, user_id: uuid.UUID, exclude: uuid.UUID | None,
                        limit: int) -> list[Item]:
    stmt = sa.select(Item).where(Item.user_id == user_id)
    if exclude is not None:
        stmt = stmt.where(Item.id != exclude)
    return list((await session.scalars(stmt.order_by(Item.created_at.desc()).limit(limit))).all())


async def open_depth(session: AsyncSession, now: datetime) -> list[tuple[str, str, int]]:
    """(category, display status, count) over open items, for the queue-depth gauge."""
    in_review = sa.case((Item.lease_expires_at > now, sa.literal("in_review")), else_=Item.status)
    stmt = sa.select(Item.category, in_review, sa.func.count()).where(_OPEN).group_by(Item.category, in_review)
    return [(str(c), str(s), int(n)) for c, s, n in (await session.execute(stmt)).all()]


# --- pipeline output (read only) ------------------------------------------------------------------


async def flags_of_slice(session: AsyncSession, slice_id: uuid.UUID) -> list[Flag]:
    stmt = sa.select(Flag).where(Flag.slice_id == slice_id).order_by(Flag.start_ms, Flag.created_at)
    return list((await session.scalars(stmt)).all())


async def flags_of_slices(session: AsyncSession, slice_ids: Sequence[uuid.UUID]) -> list[Flag]:
    if not slice_ids:
        return []
    stmt = sa.select(Flag).where(Flag.slice_id.in_(slice_ids)).order_by(Flag.created_at)
    return list((await session.scalars(stmt)).all())


async def analysis_of(session: AsyncSession, slice_id: uuid.UUID) -> SliceAnalysis | None:
    return await session.get(SliceAnalysis, slice_id)


# --- decisions ------------------------------------------------------------------------------------


async def get_decision(session: AsyncSession, decision_id: uuid.UUID) -> Decision | None:
    return await session.get(Decision, decision_id)


async def decision_by_key(session: AsyncSession, actor_id: uuid.UUID, key: str) -> Decision | None:
    stmt = sa.select(Decision).where(Decision.actor_id == actor_id, Decision.idempotency_key == key)
    return (await session.scalars(stmt)).first()


async def decisions_of_item(session: AsyncSession, item_id: uuid.UUID) -> list[Decision]:
    stmt = sa.select(Decision).where(Decision.item_id == item_id).order_by(Decision.created_at, Decision.id)
    return list((await session.scalars(stmt)).all())


async def decisions_about(session: AsyncSession, user_id: uuid.UUID, *, visible_only: bool,
                          limit: int, offset: int = 0) -> list[Decision]:
    stmt = sa.select(Decision).where(Decision.subject_user_id == user_id)
    if visible_only:
        stmt = stmt.where(Decision.visible_to_user.is_(True))
    stmt = stmt.order_by(Decision.created_at.desc(), Decision.id).limit(limit).offset(offset)
    return list((await session.scalars(stmt)).all())


async def count_decisions(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(outcome, automated_decision, count) over every decision ever made."""
    stmt = sa.select(Decision.outcome, Decision.automated_decision, sa.func.count()).group_by(
        Decision.outcome, Decision.automated_decision)
    return [(str(o), str(a), int(n)) for o, a, n in (await session.execute(stmt)).all()]


# --- appeals ----------------------------------------------------------------------------------------


async def get_appeal(session: AsyncSession, appeal_id: uuid.UUID) -> Appeal | None:
    return await session.get(Appeal, appeal_id, populate_existing=True)


async def appeal_of_decision(session: AsyncSession, decision_id: uuid.UUID) -> Appeal | None:
    return (await session.scalars(sa.select(Appeal).where(Appeal.decision_id == decision_id))).first()


async def appeals_of_decisions(session: AsyncSession, decision_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Appeal]:
    if not decision_ids:
        return {}
    rows = (await session.scalars(sa.select(Appeal).where(Appeal.decision_id.in_(decision_ids)))).all()
    return {a.decision_id: a for a in rows}


async def open_appeals_of_item(session: AsyncSession, item_id: uuid.UUID) -> list[Appeal]:
    stmt = sa.select(Appeal).where(Appeal.item_id == item_id, Appeal.status == AppealStatus.open.value)
    return list((await session.scalars(stmt.order_by(Appeal.created_at))).all())


async def resolve_appeal(session: AsyncSession, appeal_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Close an open appeal (compare-and-set on its status)."""
    stmt = (sa.update(Appeal).where(Appeal.id == appeal_id, Appeal.status == AppealStatus.open.value)
            .values(**values).execution_options(synchronize_session=False))
    return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]


async def count_appeals(session: AsyncSession) -> list[tuple[str, int]]:
    stmt = sa.select(Appeal.status, sa.func.count()).group_by(Appeal.status)
    return [(str(s), int(n)) for s, n in (await session.execute(stmt)).all()]


# --- strikes -----------------------------------------------------------------------------------------


async def active_strikes(session: AsyncSession, user_id: uuid.UUID) -> int:
    stmt = sa.select(sa.func.count()).select_from(Strike).where(Strike.user_id == user_id,
                                                                 Strike.cleared_at.is_(None))
    return int((await session.execute(stmt)).scalar_one())


async def strike_of_decision(session: AsyncSession, decision_id: uuid.UUID) -> Strike | None:
    return (await session.scalars(sa.select(Strike).where(Strike.decision_id == decision_id))).first()


# --- restrictions --------------------------------------------------------------------------------------


async def active_restrictions_of_item(session: AsyncSession, item_id: uuid.UUID) -> list[Restriction]:
    stmt = sa.select(Restriction).where(Restriction.item_id == item_id, Restriction.lifted_at.is_(None))
    return list((await session.scalars(stmt.order_by(Restriction.created_at))).all())


async def restrictions_of_decision(session: AsyncSession, decision_id: uuid.UUID) -> list[Restriction]:
    stmt = sa.select(Restriction).where(Restriction.decision_id == decision_id)
    return list((await session.scalars(stmt.order_by(Restriction.created_at))).all())


async def active_restrictions_of_user(session: AsyncSession, user_id: uuid.UUID, kinds: Sequence[str],
                                      now: datetime) -> list[Restriction]:
    stmt = sa.select(Restriction).where(
        Restriction.user_id == user_id, Restriction.lifted_at.is_(None), Restriction.applied.is_(True),
        Restriction.kind.in_(kinds), sa.or_(Restriction.until.is_(None), Restriction.until > now),
    )
    return list((await session.scalars(stmt)).all())


# --- recording opens and the event log -------------------------------------------------------------------


async def get_recording_open(session: AsyncSession, open_id: uuid.UUID) -> RecordingOpen | None:
    return await session.get(RecordingOpen, open_id)


async def events_of_item(session: AsyncSession, item_id: uuid.UUID, limit: int,
                         offset: int = 0) -> list[ModerationEvent]:
    stmt = sa.select(ModerationEvent).where(ModerationEvent.item_id == item_id).order_by(ModerationEvent.seq)
    return list((await session.scalars(stmt.limit(limit).offset(offset))).all())


async def unlink_person_from_events(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Cancellation: the log keeps its lines but loses the link to the person (ids to NULL,
    which the append-only triggers allow)."""
    await session.execute(sa.update(ModerationEvent).where(ModerationEvent.actor_id == user_id)
                          .values(actor_id=None).execution_options(synchronize_session=False))
    await session.execute(sa.update(ModerationEvent).where(ModerationEvent.subject_user_id == user_id)
                          .values(subject_user_id=None).execution_options(synchronize_session=False))


async def held_slices(session: AsyncSession, slice_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Slices that are evidence in an open case: any slice of an open case, or of a case under
    an open appeal."""
    if not slice_ids:
        return set()
    open_items = (sa.select(CaseFlag.slice_id).join(Item, Item.id == CaseFlag.item_id)
                  .where(CaseFlag.slice_id.in_(slice_ids), _OPEN))
    appealed = (sa.select(CaseFlag.slice_id).join(Appeal, Appeal.item_id == CaseFlag.item_id)
                .where(CaseFlag.slice_id.in_(slice_ids), Appeal.status == AppealStatus.open.value))
    rows = (await session.execute(sa.union(open_items, appealed))).all()
    return {r[0] for r in rows}


async def users_by_ids(session: AsyncSession, user_ids: Sequence[uuid.UUID | None]) -> dict[uuid.UUID, Any]:
    """Display data of the people on a page of the queue, in one query."""
    from accounts.models import User

    ids = {u for u in user_ids if u is not None}
    if not ids:
        return {}
    rows = (await session.scalars(sa.select(User).where(User.id.in_(ids)))).all()
    return {u.id: u for u in rows}


async def redact_appeals_of(session: AsyncSession, user_id: uuid.UUID, text: str) -> None:
    await session.execute(sa.update(Appeal).where(Appeal.user_id == user_id).values(text=text)
                          .execution_options(synchronize_session=False))


async def appeal_session_by_hash(session: AsyncSession, token_hash: str) -> AppealSession | None:
    stmt = sa.select(AppealSession).where(AppealSession.token_hash == token_hash)
    return (await session.scalars(stmt)).first()
