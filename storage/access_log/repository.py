"""All SQL of the access log. There is deliberately no update or delete of entries here,
except ``detach_person_ids`` (raw person ids to NULL, which the database triggers allow)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from storage.access_log.models import AccessLogEntry, AccessLogHead, AccessLogPerson
from storage.db import utcnow

_entries = cast(sa.Table, AccessLogEntry.__table__)
_head = cast(sa.Table, AccessLogHead.__table__)
_people = cast(sa.Table, AccessLogPerson.__table__)


async def advance_head(session: AsyncSession) -> tuple[int, str]:
    """Take the chain lock and reserve the next sequence number: returns (new seq, previous hash).

    The UPDATE comes first on purpose: on PostgreSQL it row-locks the head until commit, so a
    second writer waits and then sees the first one's hash; on SQLite it takes the database
    write lock before anything is read.
    """
    stmt = (
        sa.update(_head).where(_head.c.id == 1).values(seq=_head.c.seq + 1)
        .returning(_head.c.seq, _head.c.hash)
    )
    row = (await session.execute(stmt)).one()
    return int(row.seq), str(row.hash)


async def lock_head(session: AsyncSession) -> None:
    """Take the chain lock without extending the chain (a no-op UPDATE locks on both databases)."""
    await session.execute(sa.update(_head).where(_head.c.id == 1).values(seq=_head.c.seq))


async def set_head_hash(session: AsyncSession, seq: int, hash_: str) -> None:
    await session.execute(sa.update(_head).where(_head.c.id == 1, _head.c.seq == seq).values(hash=hash_))


async def get_head(session: AsyncSession) -> tuple[int, str]:
    row = (await session.execute(sa.select(_head.c.seq, _head.c.hash).where(_head.c.id == 1))).one()
    return int(row.seq), str(row.hash)


async def add_entry(session: AsyncSession, entry: AccessLogEntry) -> None:
    session.add(entry)
    await session.flush()


async def person_ref(session: AsyncSession, user_id: uuid.UUID) -> str:
    """The person's reference in the log, created on first use (safe under concurrent writers)."""
    existing = await session.scalar(sa.select(_people.c.ref).where(_people.c.user_id == user_id))
    if existing is not None:
        return str(existing)
    values = {"user_id": user_id, "ref": secrets.token_hex(16), "created_at": utcnow()}
    dialect = session.get_bind().dialect.name
    ins: sa.Insert
    if dialect == "postgresql":
        ins = postgresql.insert(_people).values(values).on_conflict_do_nothing(index_elements=["user_id"])
    elif dialect == "sqlite":
        ins = sqlite.insert(_people).values(values).on_conflict_do_nothing(index_elements=["user_id"])
    else:  # pragma: no cover - only the two supported databases
        ins = sa.insert(_people).values(values)
    await session.execute(ins)
    return str(await session.scalar(sa.select(_people.c.ref).where(_people.c.user_id == user_id)))


async def entries_page(session: AsyncSession, after_seq: int, up_to_seq: int, limit: int) -> Sequence[Row]:
    """Entries with ``after_seq < seq <= up_to_seq`` in order, as plain rows (no ORM identity map)."""
    stmt = (
        sa.select(*_entries.c)
        .where(_entries.c.seq > after_seq, _entries.c.seq <= up_to_seq)
        .order_by(_entries.c.seq)
        .limit(limit)
    )
    return (await session.execute(stmt)).all()


async def entries_about(session: AsyncSession, subject_id: uuid.UUID, limit: int) -> Sequence[AccessLogEntry]:
    stmt = (
        sa.select(AccessLogEntry).where(AccessLogEntry.subject_id == subject_id)
        .order_by(AccessLogEntry.seq.desc()).limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def entries_for_resource(
    session: AsyncSession, resource_type: str, resource_id: str, limit: int
) -> Sequence[AccessLogEntry]:
    stmt = (
        sa.select(AccessLogEntry)
        .where(AccessLogEntry.resource_type == resource_type, AccessLogEntry.resource_id == resource_id)
        .order_by(AccessLogEntry.seq.desc()).limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def detach_person_ids(session: AsyncSession, user_id: uuid.UUID) -> int:
    """NULL the raw ids of ``user_id`` in the log and forget their reference. Returns entries touched.

    Holds the chain lock, so no entry about the person is being written meanwhile with the old reference.
    """
    await lock_head(session)
    n_actor = await session.execute(
        sa.update(_entries).where(_entries.c.actor_id == user_id).values(actor_id=None)
    )
    n_subject = await session.execute(
        sa.update(_entries).where(_entries.c.subject_id == user_id).values(subject_id=None)
    )
    await session.execute(sa.delete(_people).where(_people.c.user_id == user_id))
    return int(getattr(n_actor, "rowcount", 0) or 0) + int(getattr(n_subject, "rowcount", 0) or 0)
