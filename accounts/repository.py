"""All SQL of accounts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import AuthSession, GuardianConsent, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def get_user_by_phone_bidx(session: AsyncSession, bidx: str) -> User | None:
    return (await session.execute(select(User).where(User.phone_bidx == bidx))).scalar_one_or_none()


async def add(session: AsyncSession, obj: User | GuardianConsent | AuthSession) -> None:
    session.add(obj)
    await session.flush()


async def get_session_by_hash(session: AsyncSession, token_hash: str) -> tuple[AuthSession, User] | None:
    row = (
        await session.execute(
            select(AuthSession, User).join(User, User.id == AuthSession.user_id)
            .where(AuthSession.token_hash == token_hash)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def get_session_by_id(session: AsyncSession, auth_session_id: uuid.UUID) -> tuple[AuthSession, User] | None:
    row = (
        await session.execute(
            select(AuthSession, User).join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == auth_session_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def revoke_session(session: AsyncSession, session_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(AuthSession).where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def signed_in_from(session: AsyncSession, user_id: uuid.UUID, ip: str, since: datetime) -> bool:
    """Whether the user opened a session from ``ip`` since ``since`` (a known address of theirs)."""
    q = select(AuthSession.id).where(
        AuthSession.user_id == user_id, AuthSession.ip == ip, AuthSession.created_at >= since
    ).limit(1)
    return (await session.execute(q)).first() is not None


async def guardian_consents(session: AsyncSession, user_id: uuid.UUID) -> list[GuardianConsent]:
    q = select(GuardianConsent).where(GuardianConsent.user_id == user_id)
    return list((await session.execute(q)).scalars())


async def list_users(
    session: AsyncSession, role: str | None, status: str | None, limit: int, offset: int
) -> list[User]:
    q = select(User).order_by(User.created_at, User.id).limit(limit).offset(offset)
    if role:
        q = q.where(User.role == role)
    if status:
        q = q.where(User.status == status)
    return list((await session.execute(q)).scalars())


async def delete_guardian_consents(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(GuardianConsent).where(GuardianConsent.user_id == user_id))
