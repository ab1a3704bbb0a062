"""All SQL of the throttle: counters reserved atomically, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import ThrottleCounter


async def ensure(session: AsyncSession, keys: list[str], now: datetime) -> None:
    """Create the counters that do not exist yet (a concurrent creator wins, nobody fails)."""
    if not keys:
        return
    rows = [{"key": k, "count": 0, "window_start": now, "last_at": now} for k in keys]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = postgresql.insert(ThrottleCounter).values(rows).on_conflict_do_nothing(index_elements=["key"])
        await session.execute(pg)
    else:
        lite = sqlite.insert(ThrottleCounter).values(rows).on_conflict_do_nothing(index_elements=["key"])
        await session.execute(lite)


async def reserve(
    session: AsyncSession, key: str, limit: int, cutoff: datetime, now: datetime, *, sliding: bool, backoff: bool,
) -> int | None:
    """Count one attempt on ``key`` if it is allowed right now, in one conditional UPDATE.

    The row lock (PostgreSQL) or the writer lock (SQLite) makes check and increment one step,
    so N concurrent callers get at most ``limit`` reservations. A window that has run out (fixed:
    since its start; sliding: since the last attempt) starts again at 1. A back-off key past its
    limit is allowed again once ``blocked_until`` has passed. Returns the new count, or None.
    """
    c = ThrottleCounter
    expired: ColumnElement[bool] = (c.last_at if sliding else c.window_start) <= cutoff
    allowed: ColumnElement[bool] = or_(expired, c.count < limit)
    if backoff:
        allowed = or_(allowed, c.blocked_until <= now)
    stmt = (
        update(c)
        .where(c.key == key, allowed)
        .values(
            count=case((expired, 1), else_=c.count + 1),
            window_start=case((expired, now), else_=c.window_start),
            blocked_until=case((expired, None), else_=c.blocked_until),
            last_at=now,
        )
        .returning(c.count)
        .execution_options(synchronize_session=False)
    )
    value: int | None = (await session.execute(stmt)).scalar_one_or_none()
    return value


async def set_blocked_until(session: AsyncSession, key: str, until: datetime) -> None:
    stmt = update(ThrottleCounter).where(ThrottleCounter.key == key).values(blocked_until=until)
    await session.execute(stmt.execution_options(synchronize_session=False))


async def get(session: AsyncSession, key: str) -> ThrottleCounter | None:
    return (await session.execute(select(ThrottleCounter).where(ThrottleCounter.key == key))).scalar_one_or_none()


async def refund(session: AsyncSession, key: str) -> None:
    """Give back one reserved attempt (it turned out to be a success)."""
    c = ThrottleCounter
    stmt = update(c).where(c.key == key, c.count > 0).values(count=c.count - 1)
    await session.execute(stmt.execution_options(synchronize_session=False))


async def clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))


async def delete_idle(session: AsyncSession, before: datetime) -> int:
    """Forget counters untouched since ``before`` (housekeeping; an idle counter allows anyway)."""
    result = await session.execute(delete(ThrottleCounter).where(ThrottleCounter.last_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
