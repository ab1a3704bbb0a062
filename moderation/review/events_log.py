"""The moderation event log: every step of a case (flag created, live nudge, claimed, released, lease
expired, decided, escalated, appealed, upheld, overturned, restriction applied or lifted,
strike added or cleared, recording opened) appended as one row. Rows are never edited; the
database refuses it (see migration ``moderation_0003``)."""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moderation.review import repository as repo
from moderation.review.models import ModerationEvent
from storage.db import utcnow


class EventKind(enum.StrEnum):
    flag_created = "flag_created"
    item_reopened = "item_reopened"  # (before cases: a decided slice got new flags)
    claimed = "claimed"
    lease_renewed = "lease_renewed"
    released = "released"
    lease_expired = "lease_expired"
    decided = "decided"
    escalated = "escalated"
    appealed = "appealed"
    appeal_upheld = "appeal_upheld"
    overturned = "overturned"
    restriction_applied = "restriction_applied"
    restriction_lifted = "restriction_lifted"
    strike_added = "strike_added"
    strike_cleared = "strike_cleared"
    recording_opened = "recording_opened"
    live_nudge = "live_nudge"  # the speaker was shown the policy notice in the live class


async def append(
    session: AsyncSession,
    kind: EventKind,
    *,
    actor_id: uuid.UUID | None,
    actor_role: str,
    item_id: uuid.UUID | None = None,
    decision_id: uuid.UUID | None = None,
    appeal_id: uuid.UUID | None = None,
    subject_user_id: uuid.UUID | None = None,
    **data: Any,
) -> ModerationEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the change)."""
    event = ModerationEvent(
        at=utcnow(), kind=kind.value, item_id=item_id, decision_id=decision_id, appeal_id=appeal_id,
        actor_id=actor_id, actor_role=actor_role, subject_user_id=subject_user_id,
        data={k: _jsonable(v) for k, v in data.items()},
    )
    await repo.add(session, event)
    return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
