"""The classroom's part in the privacy promises: media retention (4), cancellation (5), export (6).

Registered by the composition root into ``storage.retention`` and ``accounts.events``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from classroom import repository as repo
from storage.db import utcnow
from storage.jobs import enqueue
from storage.retention import Candidate, held_refs


class SliceMediaRetention:
    """Raw slice media past its period; the slice row, and flags on it, stay."""

    name = "slices"

    async def find_expired(self, session: AsyncSession, older_than: datetime, limit: int) -> Sequence[Candidate]:
        return [Candidate(key=s.media_key, ref=str(s.id)) for s in await repo.expired_slices(session, older_than,
                                                                                            limit)]

    async def mark_purged(self, session: AsyncSession, candidates: Sequence[Candidate]) -> None:
        await repo.mark_media_deleted(session, [uuid.UUID(c.ref) for c in candidates], utcnow())


async def on_user_cancelled(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Delete the user's recordings, except those held as evidence (legal hold or an open case).

    Rows are marked now; the files go in a job after the cancellation commits, so a rolled-back
    cancellation deletes nothing.
    """
    slices = [s for s in await repo.slices_with_media_of_user(session, user_id) if not s.legal_hold]
    if not slices:
        return
    held = await held_refs(session, [Candidate(key=s.media_key, ref=str(s.id)) for s in slices])
    gone = [s for s in slices if str(s.id) not in held]
    if not gone:
        return
    await repo.mark_media_deleted(session, [s.id for s in gone], utcnow())
    enqueue(session, "classroom.delete_media", keys=[s.media_key for s in gone])


async def export_user(session: AsyncSession, user_id: uuid.UUID) -> tuple[str, Any]:
    """The user's classes, attendance, recording on/off events, controls applied to them and the list
    of their recordings."""
    return "classroom", {
        "classes_taught": [{"id": str(c.id), "title": c.title} for c in await repo.taught_classes(session, user_id)],
        "enrollments": [{"class_id": str(e.class_id), "since": e.created_at.isoformat()}
                        for e in await repo.enrollments_of_student(session, user_id)],
        "attendance": [{"session_id": str(p.session_id), "joined_at": p.joined_at.isoformat(),
                        "left_at": p.left_at.isoformat() if p.left_at else None}
                       for p in await repo.participations_of_user(session, user_id)],
        "recording_events": [{"session_id": str(e.session_id), "source": e.source, "enabled": e.enabled,
                              "at": e.at.isoformat(), "by": e.by}
                             for e in await repo.recording_events_of_user(session, user_id)],
        "controls": [{"session_id": str(c.session_id), "action": c.action, "source": c.source,
                      "at": c.at.isoformat(), "reason": c.reason}
                     for c in await repo.control_events_of_user(session, user_id)],
        "recordings": [{"id": str(s.id), "source": s.source, "started_at": s.started_at.isoformat(),
                        "ended_at": s.ended_at.isoformat(),
                        "media_deleted_at": s.media_deleted_at.isoformat() if s.media_deleted_at else None}
                       for s in await repo.slices_of_user(session, user_id)],
    }
