"""All SQL of accounts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import AuthSession, GuardianConsent, LoginAttempt, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def get_user_by_phone_bidx(session: AsyncSession, bidx: str) -> User | None:
    return (await session.execute(select(User).where(User.phone_bidx == bidx))).scalar_one_or_none()


async def add(session: AsyncSession, obj: User | GuardianConsent | AuthSession | LoginAttempt) -> None:
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


async def count_failures(session: AsyncSession, key: str, since: datetime) -> int:
    q = select(func.count()).select_from(LoginAttempt).where(LoginAttempt.key == key, LoginAttempt.at >= since)
    return int((await session.execute(q)).scalar_one())


async def oldest_failure(session: AsyncSession, key: str, since: datetime) -> datetime | None:
    q = select(func.min(LoginAttempt.at)).where(LoginAttempt.key == key, LoginAttempt.at >= since)
    value: datetime | None = (await session.execute(q)).scalar_one()
    return value


async def clear_failures(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginAttempt).where(LoginAttempt.key == key))


async def guardian_consents(session: AsyncSession, user_id: uuid.UUID) -> list[GuardianConsent]:
    q = select(GuardianConsent).where(GuardianConsent.user_id == user_id)
    return list((await session.execute(q)).scalars())


async def record_failure_independently(key: str, at: datetime) -> None:
    """Store a failed login in its own short transaction.

    The request that failed rolls back (it answers 401), but the failure must still count
    towards throttling, so it cannot ride on the request's session.
    """
    from storage.runtime import get_runtime

    async with get_runtime().sessionmaker() as own:
        own.add(LoginAttempt(key=key, at=at))
        await own.commit()


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
