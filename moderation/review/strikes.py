"""The strike table: repeated confirmed violations escalate the account-level action.

``settings.strike_table`` maps the n-th active strike to an action, e.g.
``{"1": "warn", "2": "suspend:7", "3": "ban"}``; beyond the largest n the largest entry applies.
A strike is counted for every confirmed violation and cleared when an appeal overturns it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from moderation.review import repository as repo
from moderation.review.models import Action, Strike
from storage.db import utcnow

# Live-class actions (warn, mute, end of class) do not touch the account; among account
# actions a longer suspension is heavier and a ban is heaviest.
_BAN_RANK = 10**9


@dataclass(frozen=True)
class AccountAction:
    """What a decision does to the account: nothing (``None``), a suspension of ``days`` or a ban."""

    action: Action | None
    days: int | None = None

    @property
    def rank(self) -> int:
        if self.action == Action.ban:
            return _BAN_RANK
        if self.action == Action.suspend:
            return 1 + (self.days or 0)
        return 0

    def label(self) -> str:
        if self.action == Action.suspend:
            return f"suspend:{self.days}"
        return self.action.value if self.action else "none"


def parse_entry(text: str) -> tuple[Action, int | None]:
    """``"warn"`` → (warn, None); ``"suspend:7"`` → (suspend, 7). Raises ValueError on anything else."""
    name, _, arg = text.strip().partition(":")
    action = Action(name)
    if action == Action.suspend:
        days = int(arg)
        if days <= 0:
            raise ValueError(f"strike table: suspension needs a positive number of days, got {text!r}")
        return action, days
    if arg:
        raise ValueError(f"strike table: {name!r} takes no argument ({text!r})")
    return action, None


def action_for(table: dict[str, str], strike_number: int) -> tuple[Action, int | None]:
    """The table's action for the n-th strike (the last entry for anything beyond it)."""
    entries = sorted((int(k), v) for k, v in table.items())
    if not entries:
        return Action.warn, None
    chosen = entries[0][1]
    for n, text in entries:
        if n <= strike_number:
            chosen = text
    return parse_entry(chosen)


def account_part(action: Action, days: int | None) -> AccountAction:
    if action in (Action.suspend, Action.ban):
        return AccountAction(action, days)
    return AccountAction(None)


async def add_strike(session: AsyncSession, user_id: uuid.UUID, decision_id: uuid.UUID) -> int:
    """Count a confirmed violation; returns the user's number of active strikes including it."""
    await repo.add(session, Strike(user_id=user_id, decision_id=decision_id))
    return await repo.active_strikes(session, user_id)


async def clear_strike(session: AsyncSession, decision_id: uuid.UUID, appeal_id: uuid.UUID) -> Strike | None:
    strike = await repo.strike_of_decision(session, decision_id)
    if strike is None or strike.cleared_at is not None:
        return None
    strike.cleared_at = utcnow()
    strike.cleared_by_appeal_id = appeal_id
    await session.flush()
    return strike
