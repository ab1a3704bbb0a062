"""Hooks through which other domains take part in account-wide operations.

accounts knows no other domain; the composition root (``classguard/wiring.py``) registers
each domain's part:
- ``cancellation_hooks``: called in the cancelling transaction, after the account itself is
  anonymised, to delete or anonymise that domain's personal data of the user (keeping what law
  requires, detached from the live account);
- ``export_providers``: each returns ``(section name, JSON-able data)`` for the user's data copy;
- ``sign_out_hooks``: called AFTER the transaction commits when a user may no longer be signed
  in: one token revoked (logout) or every token of the account (suspended, banned, cancelled).
  The classroom closes the user's live connections through it; consent withdrawal reuses it.
"""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.after_commit import after_commit

CancellationHook = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]
ExportProvider = Callable[[AsyncSession, uuid.UUID], Awaitable[tuple[str, Any]]]

cancellation_hooks: list[CancellationHook] = []
export_providers: list[ExportProvider] = []


class SignOutReason(enum.StrEnum):
    logout = "logout"
    suspended = "suspended"
    banned = "banned"
    cancelled = "cancelled"


@dataclass(frozen=True)
class SignOut:
    """Who is signed out: one token (``auth_session_id``) or, when it is None, the whole account."""

    user_id: uuid.UUID
    reason: SignOutReason
    auth_session_id: uuid.UUID | None = None


SignOutHook = Callable[[SignOut], Awaitable[None]]
sign_out_hooks: list[SignOutHook] = []


def announce_sign_out(session: AsyncSession, event: SignOut) -> None:
    """Run every sign-out hook once ``session`` commits (nothing happens if it rolls back)."""
    for hook in list(sign_out_hooks):
        after_commit(session, functools.partial(hook, event), f"sign-out {event.reason} {event.user_id}")
