"""The pipeline's part in the privacy promises: transcripts and screen text are personal data.

Cancellation (promise 5) deletes them unless the slice is evidence in an open case (its flags
and decisions keep their quotes, as promise 4 says); the export (promise 6) includes them.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moderation import repository as repo
from storage.retention import Candidate, held_refs


async def on_user_cancelled(session: AsyncSession, user_id: uuid.UUID) -> None:
    pairs = await repo.analyses_of_user(session, user_id)
    if not pairs:
        return
    held = await held_refs(session, [Candidate(key=s.media_key, ref=str(s.id)) for s, _ in pairs])
    await repo.delete_analyses(session, [s.id for s, _ in pairs if str(s.id) not in held and not s.legal_hold])


async def export_user(session: AsyncSession, user_id: uuid.UUID) -> tuple[str, Any]:
    return "transcripts", [
        {"slice_id": str(s.id), "source": s.source, "started_at": s.started_at.isoformat(),
         "transcript": a.transcript, "screen_text": [o.get("text") for o in a.ocr]}
        for s, a in await repo.analyses_of_user(session, user_id)
    ]
