"""Staff reads of class data about people (privacy promise 3): who was in a session and when,
who is connected now, who is enrolled, whose sources went on and off, whose slices exist.

A class's own teacher sees this as part of teaching and is not "staff reading personal data";
a moderator or admin looking in is, and every person the answer names gets an access-log entry
(so it shows up in their ``/me/access-log``), written before the answer leaves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from classroom import auth
from classroom.models import Class
from storage.access_log.service import record_reads


async def log_staff_read(session: AsyncSession, reader: User, cls: Class | None, resource_type: str,
                         resource_id: uuid.UUID | str, subject_ids: Iterable[uuid.UUID | None], reason: str) -> None:
    """Log the read when ``reader`` is staff and not the class's teacher; else nothing."""
    if not auth.is_staff(reader) or (cls is not None and reader.id == cls.teacher_id):
        return
    await record_reads(session, actor_id=reader.id, actor_role=reader.role, resource_type=resource_type,
                       resource_id=resource_id, subject_ids=subject_ids, reason=reason)
