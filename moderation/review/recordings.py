"""Staff opening a recording. Every open writes the access log (who, what, when, why, about
whom) before any byte leaves; the byte-range and frame requests of that playback then ride on
the open's id until it expires, so seeking does not flood the log."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from classroom import repository as classroom_repo
from classroom.models import Slice
from moderation.review import events_log
from moderation.review import repository as repo
from moderation.review.events_log import EventKind
from moderation.review.frames import FrameUnavailable, frame_jpeg
from moderation.review.models import RecordingOpen
from moderation.review.service import get_item_or_404
from storage.access_log.service import record_access
from storage.db import utcnow
from storage.errors import AppError, Forbidden, NotFound, Unprocessable
from storage.media_http import range_response
from storage.runtime import get_runtime

OPEN_TTL = timedelta(minutes=30)


class Gone(AppError):
    status, error = 410, "Gone"


async def _slice(session: AsyncSession, slice_id: uuid.UUID) -> Slice:
    sl = await classroom_repo.get_slice(session, slice_id)
    if sl is None:
        raise NotFound("the recording of this item no longer exists")
    if sl.media_deleted_at is not None:
        raise Gone("the recording was deleted under the retention policy; the flags and transcript remain")
    return sl


async def open_recording(session: AsyncSession, staff: User, item_id: uuid.UUID, reason: str,
                         slice_id: uuid.UUID | None = None) -> RecordingOpen:
    item = await get_item_or_404(session, item_id)
    if slice_id is not None and slice_id != item.slice_id and not await repo.case_has_slice(session, item.id,
                                                                                            slice_id):
        raise NotFound("this slice is not part of the case")
    sl = await _slice(session, slice_id or item.slice_id)
    await record_access(
        session, actor_id=staff.id, actor_role=staff.role, action="open", resource_type="recording",
        resource_id=sl.id, subject_id=sl.user_id, reason=reason,
    )
    now = utcnow()
    opened = RecordingOpen(staff_id=staff.id, item_id=item.id, slice_id=sl.id, reason=reason.strip(),
                           opened_at=now, expires_at=now + OPEN_TTL)
    await repo.add(session, opened)
    await events_log.append(session, EventKind.recording_opened, actor_id=staff.id, actor_role=staff.role,
                            item_id=item.id, subject_user_id=sl.user_id, recording_open_id=opened.id, reason=reason)
    return opened


async def _live_open(session: AsyncSession, staff: User, open_id: uuid.UUID) -> tuple[RecordingOpen, Slice]:
    opened = await repo.get_recording_open(session, open_id)
    if opened is None or opened.staff_id != staff.id:
        raise NotFound("recording not found")
    if opened.expires_at <= utcnow():
        raise Forbidden("this opening of the recording has expired; open it again (with a reason)")
    return opened, await _slice(session, opened.slice_id)


async def media(session: AsyncSession, staff: User, open_id: uuid.UUID, range_header: str | None) -> StreamingResponse:
    _, sl = await _live_open(session, staff, open_id)
    response = await range_response(get_runtime().media, sl.media_key, range_header, sl.content_type)
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def frame(session: AsyncSession, staff: User, open_id: uuid.UUID, t: float) -> tuple[bytes, int, int]:
    _, sl = await _live_open(session, staff, open_id)
    if sl.source != "screen":
        raise Unprocessable("only screen recordings have frames")
    data = await get_runtime().media.get_bytes(sl.media_key)
    try:
        return await asyncio.to_thread(frame_jpeg, data, t)
    except FrameUnavailable as exc:
        raise Unprocessable(str(exc)) from exc
