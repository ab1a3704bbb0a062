"""The generic part of media retention (privacy promise 4): delete raw media after its period,
unless some domain holds it (legal hold, e.g. evidence in an open moderation case).

Domains plug in, without ``storage`` knowing them:

- a **source** says which media objects are past their period and records that they are gone
  (e.g. classroom's slices: ``media_key`` of slices older than N days; ``mark_purged`` sets
  ``purged_at`` and keeps the row, so flags and decisions keep their text);
- a **hold** says which of some candidate objects must be kept (e.g. moderation: slices that
  are evidence in an open case).

``sweep`` runs them: for each batch it asks every hold, deletes the unheld objects from the
media store *first* and then lets the source record it, so a crash in between leaves a row
pointing at a missing object (harmless; the next sweep re-marks it) and never a file kept
past its period with a row saying it is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import unit_of_work
from storage.media import MediaStore

log = logging.getLogger("classguard.retention")


@dataclass(frozen=True)
class Candidate:
    """One media object that a source considers expired. ``ref`` is the source's own id (e.g. a slice id)."""

    key: str
    ref: str


class RetentionSource(Protocol):
    name: str

    async def find_expired(self, session: AsyncSession, older_than: datetime, limit: int) -> Sequence[Candidate]:
        """Up to ``limit`` not yet purged candidates created before ``older_than``.

        Must not return a candidate again once ``mark_purged`` recorded it, and must return
        them in a stable order (``sweep`` asks for more as held ones pile up at the front).
        """
        ...

    async def mark_purged(self, session: AsyncSession, candidates: Sequence[Candidate]) -> None:
        """Record that these objects were deleted (keep the row and its text, drop the key)."""
        ...


HoldFn = Callable[[AsyncSession, Sequence[Candidate]], Awaitable[set[str]]]
"""Given candidates, return the ``ref``s that must be kept."""

SOURCES: dict[str, RetentionSource] = {}
HOLDS: dict[str, HoldFn] = {}


def register_source(source: RetentionSource) -> None:
    SOURCES[source.name] = source


def register_hold(name: str, fn: HoldFn) -> None:
    HOLDS[name] = fn


@dataclass
class SweepReport:
    deleted: int = 0
    held: int = 0
    per_source: dict[str, int] = field(default_factory=dict)


async def held_refs(session: AsyncSession, candidates: Sequence[Candidate]) -> set[str]:
    """Refs that any registered hold keeps."""
    held: set[str] = set()
    for name, hold in HOLDS.items():
        try:
            held |= await hold(session, candidates)
        except Exception:
            # A hold that cannot answer must keep everything: deleting evidence is irreversible.
            log.exception("retention hold %s failed; keeping the whole batch", name)
            return {c.ref for c in candidates}
    return held


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession],
    media: MediaStore,
    older_than: datetime,
    batch_size: int = 200,
    sources: Sequence[RetentionSource] | None = None,
) -> SweepReport:
    """Delete every unheld expired object of every source, batch by batch (one transaction each)."""
    report = SweepReport()
    for source in list(SOURCES.values()) if sources is None else sources:
        deleted_here = 0
        # Held refs stay expired; asking for batch_size more each round means every round either
        # purges something or holds something new, so the loop ends.
        skip: set[str] = set()
        while True:
            async with unit_of_work(sessionmaker) as session:
                found = await source.find_expired(session, older_than, batch_size + len(skip))
                batch = [c for c in found if c.ref not in skip]
                if not batch:
                    break
                held = await held_refs(session, batch)
                report.held += len(held)
                skip |= held
                gone = [c for c in batch if c.ref not in held]
                for cand in gone:
                    await media.delete(cand.key)
                if gone:
                    await source.mark_purged(session, gone)
                deleted_here += len(gone)
        report.per_source[source.name] = deleted_here
        report.deleted += deleted_here
    return report
