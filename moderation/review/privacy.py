"""Review's part in the platform's privacy promises, wired by the composition root:

- retention hold (promise 4): a slice's media is kept while it is evidence in an open case;
- cancellation (promise 5): the event log keeps its lines but loses the link to the person,
  and the person's appeal texts are removed (decisions keep their text, as the promise says);
- data export (promise 6): the decisions about the person and their appeals.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from moderation.review import explanations
from moderation.review import repository as repo
from storage.retention import Candidate

REMOVED = "(removed when the account was cancelled)"


async def retention_hold(session: AsyncSession, candidates: Sequence[Candidate]) -> set[str]:
    """The candidates (refs are slice ids) that are evidence in an open review case."""
    ids: dict[uuid.UUID, str] = {}
    for c in candidates:
        try:
            ids[uuid.UUID(c.ref)] = c.ref
        except ValueError:
            continue
    held = await repo.held_slices(session, list(ids))
    return {ids[s] for s in held}


async def on_account_cancelled(session: AsyncSession, user_id: uuid.UUID) -> None:
    await repo.unlink_person_from_events(session, user_id)
    await repo.redact_appeals_of(session, user_id, REMOVED)


async def export_section(session: AsyncSession, user_id: uuid.UUID) -> tuple[str, Any]:
    user = await session.get(User, user_id)
    if user is None:
        return "moderation_decisions", []
    statements = await explanations.my_decisions(session, user, limit=10_000, offset=0)
    return "moderation_decisions", [s.model_dump(mode="json") for s in statements]
