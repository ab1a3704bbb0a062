"""The hook through which the classroom announces "a slice was created".

classroom never imports moderation (imports point the other way); instead the composition
root (``classguard/wiring.py``) appends moderation's enqueue to ``slice_created_hooks``.
Hooks run on the SAME session as the slice insert, before commit, so a job they enqueue
(``storage.jobs.enqueue``) leaves only if the slice row is committed, and never without it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

SliceCreatedHook = Callable[[AsyncSession, uuid.UUID], Awaitable[None]]

slice_created_hooks: list[SliceCreatedHook] = []


async def announce_slice_created(session: AsyncSession, slice_id: uuid.UUID) -> None:
    """Run every registered hook for a newly inserted slice (inside the caller's transaction).

    A failing hook fails the transaction: a slice must not be stored without its pipeline job.
    """
    for hook in list(slice_created_hooks):
        await hook(session, slice_id)


def has_slice_consumers() -> bool:
    """Whether anything (the moderation pipeline) processes slices in this process's wiring."""
    return bool(slice_created_hooks)
