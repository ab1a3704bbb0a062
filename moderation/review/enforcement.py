"""Making decisions take effect, and undoing them.

Live-class actions go through the classroom's own service functions (mute, end the session);
account actions through accounts (suspend, ban, reinstate). Every restriction is a row, and the
account's state is *derived* from the active ones (``settle_account``), so lifting one
restriction (an appeal overturned it, a moderator dismissed an automated one) never lifts
another that still holds.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from accounts import service as accounts
from accounts.models import UserStatus
from classroom import service as classroom
from moderation.review import events_log
from moderation.review import repository as repo
from moderation.review.events_log import EventKind
from moderation.review.models import Action, Decision, Restriction, ReviewItem
from storage.db import utcnow
from storage.errors import AppError

log = logging.getLogger("classguard.moderation.review")

ACCOUNT_KINDS = (Action.suspend.value, Action.ban.value)


async def _muted_sources(session: AsyncSession, item: ReviewItem) -> list[str]:
    # A mute silences the participant's voice; a flagged screen share (anywhere in the case) is
    # stopped too.
    sources = await repo.flag_sources_of_item(session, item.id) | {item.source}
    return ["mic", "screen"] if "screen" in sources else ["mic"]


async def apply(
    session: AsyncSession, *, item: ReviewItem, decision: Decision, action: Action, days: int | None,
    automated: bool, actor_id: uuid.UUID | None, actor_role: str, reason: str, source: str,
) -> dict[str, Any]:
    """Carry out one action of a decision; returns the record stored in ``decision.applied``."""
    record: dict[str, Any] = {"kind": action.value, "source": source, "applied": True, "note": ""}
    user_id = item.user_id
    if action == Action.warn:
        return record
    if user_id is None:
        record.update(applied=False, note="the participant's account no longer exists")
        return record
    until = None
    if action == Action.mute:
        record["sources"] = sources = await _muted_sources(session, item)
        try:
            if item.session_id is None:
                raise AppError("no live session")
            for src in sources:
                await classroom.mute_participant(session, item.session_id, user_id, actor_id, reason, source=src)
        except AppError as exc:
            record.update(applied=False, note=f"not applied in the live class: {exc.detail}")
    elif action == Action.end_class:
        try:
            if item.session_id is None:
                raise AppError("no live session")
            ls = await classroom.end_session(session, item.session_id, actor_id, reason)
            record["note"] = f"live class ended at {ls.ended_at.isoformat() if ls.ended_at else 'an earlier time'}"
        except AppError as exc:
            record.update(applied=False, note=f"not applied: {exc.detail}")
    elif action == Action.suspend and days is not None:
        until = utcnow() + timedelta(days=days)
    record["until"] = until.isoformat() if until else None
    restriction = Restriction(
        user_id=user_id, item_id=item.id, decision_id=decision.id, kind=action.value, automated=automated,
        live_session_id=item.session_id, until=until, applied=bool(record["applied"]), note=str(record["note"]),
    )
    await repo.add(session, restriction)
    if action in (Action.suspend, Action.ban):
        await settle_account(session, user_id)
    record["restriction_id"] = str(restriction.id)
    await events_log.append(
        session, EventKind.restriction_applied, actor_id=actor_id, actor_role=actor_role, item_id=item.id,
        decision_id=decision.id, subject_user_id=user_id, restriction=action.value, automated=automated,
        until=until, applied=record["applied"], note=record["note"], source=source,
    )
    return record


async def lift(
    session: AsyncSession, restriction: Restriction, item: ReviewItem | None, *,
    actor_id: uuid.UUID | None, actor_role: str, reason: str,
) -> None:
    """Lift one restriction and bring the live class and the account in line with what remains."""
    if restriction.lifted_at is not None:
        return
    restriction.lifted_at = utcnow()
    restriction.lifted_by = actor_id
    restriction.lift_reason = reason
    await session.flush()
    note = ""
    if restriction.kind == Action.mute.value and restriction.applied and restriction.user_id and item is not None:
        note = await _unmute_if_no_other(session, restriction, item, actor_id, reason)
    elif restriction.kind == Action.end_class.value:
        note = "an ended class cannot be restarted; the teacher may start a new session"
    elif restriction.kind in ACCOUNT_KINDS and restriction.user_id:
        await settle_account(session, restriction.user_id)
    await events_log.append(
        session, EventKind.restriction_lifted, actor_id=actor_id, actor_role=actor_role,
        item_id=restriction.item_id, decision_id=restriction.decision_id, subject_user_id=restriction.user_id,
        restriction_id=restriction.id, restriction=restriction.kind, automated=restriction.automated, reason=reason,
        note=note,
    )


async def _unmute_if_no_other(session: AsyncSession, restriction: Restriction, item: ReviewItem,
                              actor_id: uuid.UUID | None, reason: str) -> str:
    assert restriction.user_id is not None
    others = [r for r in await repo.active_restrictions_of_user(session, restriction.user_id,
                                                                (Action.mute.value,), utcnow())
              if r.live_session_id == restriction.live_session_id and r.id != restriction.id]
    if others or restriction.live_session_id is None:
        return "another mute still holds" if others else ""
    try:
        for src in await _muted_sources(session, item):
            await classroom.unmute_participant(session, restriction.live_session_id, restriction.user_id,
                                               actor_id, reason, source=src)
    except AppError as exc:
        return f"the live class is over ({exc.detail})"
    return "unmuted in the live class"


async def settle_account(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Set the account's status from the active suspension and ban restrictions."""
    now = utcnow()
    active = await repo.active_restrictions_of_user(session, user_id, ACCOUNT_KINDS, now)
    user = await accounts.get_user_or_404(session, user_id)
    if user.status == UserStatus.cancelled.value:
        return
    if any(r.kind == Action.ban.value for r in active):
        if user.status != UserStatus.banned.value:
            await accounts.ban(session, user_id)
        return
    if active:
        ends = [r.until for r in active]
        until = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        if user.status == UserStatus.banned.value:  # the ban was lifted; accounts keeps a ban over a suspension
            await accounts.reinstate(session, user_id)
        if user.status != UserStatus.suspended.value or user.suspended_until != until:
            await accounts.suspend(session, user_id, until)
        return
    if user.status in (UserStatus.suspended.value, UserStatus.banned.value):
        await accounts.reinstate(session, user_id)
