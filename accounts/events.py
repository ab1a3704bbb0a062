"""Hooks through which other domains take part in account-wide privacy operations.

accounts knows no other domain; the composition root (``classguard/wiring.py``) registers
each domain's part:
- ``cancellation_hooks``: called in the cancelling transaction, after the account itself is
  anonymised, to delete or anonymise that domain's personal data of the user (keeping what law
  requires, detached from the live account);
- ``export_providers``: each returns ``(section name, JSON-able data)`` for the user's data copy.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

CancellationHook = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]
ExportProvider = Callable[[AsyncSession, uuid.UUID], Awaitable[tuple[str, Any]]]

cancellation_hooks: list[CancellationHook] = []
export_providers: list[ExportProvider] = []
