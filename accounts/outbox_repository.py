"""All SQL of the outbox of messages to people."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import OutboxMessage


async def add(session: AsyncSession, msg: OutboxMessage) -> None:
    session.add(msg)
    await session.flush()


async def get(session: AsyncSession, message_id: uuid.UUID) -> OutboxMessage | None:
    return await session.get(OutboxMessage, message_id)


async def newest(session: AsyncSession, channel: str | None, status: str | None, limit: int) -> list[OutboxMessage]:
    q = select(OutboxMessage).order_by(OutboxMessage.created_at.desc(), OutboxMessage.id).limit(limit)
    if channel:
        q = q.where(OutboxMessage.channel == channel)
    if status:
        q = q.where(OutboxMessage.status == status)
    return list((await session.execute(q)).scalars())
