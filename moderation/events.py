"""Announcements of the moderation pipeline, for the parts built on top of it (review, enforcement).

``flags_stored_hooks`` run on the SAME session (transaction) that stored a slice's new flags,
before commit: whatever a hook writes (review items, automated restrictions) is committed
together with the flags or not at all. The pipeline never imports its consumers; the review
package (or the composition root) appends its hook here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

FlagsStoredHook = Callable[[AsyncSession, uuid.UUID, list[uuid.UUID]], Awaitable[None]]

flags_stored_hooks: list[FlagsStoredHook] = []


async def announce_flags_stored(session: AsyncSession, slice_id: uuid.UUID, flag_ids: list[uuid.UUID]) -> None:
    """Run every hook for the flags just inserted for ``slice_id`` (only new ones, never empty).

    A failing hook fails the rules stage's transaction: the flags are not stored without the
    work their consumers attach to them, and the stage is retried.
    """
    if not flag_ids:
        return
    for hook in list(flags_stored_hooks):
        await hook(session, slice_id, list(flag_ids))
