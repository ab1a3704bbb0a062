"""All SQL of self-registration: pending registrations and their one-time codes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import PendingRegistration


async def add(session: AsyncSession, row: PendingRegistration) -> None:
    session.add(row)
    await session.flush()


async def supersede(session: AsyncSession, contact_key: str, at: datetime) -> None:
    """End the live registrations of a contact: only the newest code works."""
    p = PendingRegistration
    stmt = update(p).where(p.contact_key == contact_key, p.used_at.is_(None)).values(used_at=at)
    await session.execute(stmt.execution_options(synchronize_session=False))


async def take_attempt(
    session: AsyncSession, contact_key: str, now: datetime, max_attempts: int
) -> PendingRegistration | None:
    """Count one code attempt on the contact's live registration, atomically (a conditional
    UPDATE), and return it; None when there is none or its attempts are used up."""
    p = PendingRegistration
    live = (
        select(p.id).where(p.contact_key == contact_key, p.used_at.is_(None), p.expires_at > now)
        .order_by(p.created_at.desc()).limit(1)
    )
    row_id = (await session.execute(live)).scalar_one_or_none()
    if row_id is None:
        return None
    stmt = (
        update(p).where(p.id == row_id, p.used_at.is_(None), p.attempts < max_attempts)
        .values(attempts=p.attempts + 1).returning(p.id)
        .execution_options(synchronize_session=False)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return None
    return await session.get(p, row_id)


async def use(session: AsyncSession, row_id: uuid.UUID, at: datetime) -> bool:
    """Mark the code used; False if another request used it first (single use, atomically)."""
    p = PendingRegistration
    stmt = update(p).where(p.id == row_id, p.used_at.is_(None)).values(used_at=at).returning(p.id)
    return (await session.execute(stmt.execution_options(synchronize_session=False))).first() is not None
