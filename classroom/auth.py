"""Who may do what in a class: join, moderate a live session, read slices and recording events.

Joining is for the class's teacher and its enrolled students only; moderators act on a live
class through the HTTP controls (mute, remove, end), not by joining it.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import Role, User
from classroom import repository as repo
from classroom.models import Class
from storage.errors import Forbidden

STAFF_ROLES = frozenset({Role.moderator.value, Role.admin.value})


def is_staff(user: User) -> bool:
    return user.role in STAFF_ROLES


async def join_role(session: AsyncSession, cls: Class, user: User) -> Literal["teacher", "student"]:
    """The role ``user`` joins ``cls`` with, or 403 if they are neither its teacher nor enrolled."""
    if user.id == cls.teacher_id:
        return "teacher"
    if user.role == Role.student.value and await repo.get_enrollment(session, cls.id, user.id) is not None:
        return "student"
    raise Forbidden("only the class's teacher and its enrolled students may join")


def require_teacher_of(cls: Class, user: User) -> None:
    if user.id != cls.teacher_id:
        raise Forbidden("only the class's teacher may do this")


def require_can_moderate(cls: Class, user: User) -> None:
    """The class's teacher and staff (moderator, admin) may mute, remove and end."""
    if user.id != cls.teacher_id and not is_staff(user):
        raise Forbidden("only the class's teacher or a moderator may do this")


def require_staff(user: User) -> None:
    if not is_staff(user):
        raise Forbidden("requires role moderator or admin")


async def events_visible_to(session: AsyncSession, cls: Class, user: User) -> uuid.UUID | None:
    """Whose recording events ``user`` may list in a session of ``cls``: ``None`` for everyone's
    (staff and the teacher, who sees every indicator in class anyway), else only their own.
    Raises 403 for someone who was never part of the class."""
    if is_staff(user) or user.id == cls.teacher_id:
        return None
    await join_role(session, cls, user)
    return user.id
