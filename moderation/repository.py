"""All SQL of the moderation pipeline: stage runs, analyses, flags, policy versions, and the
slices it works on (rows of the classroom's ``slices`` table)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from classroom.models import Slice
from moderation.models import Flag, PolicyVersion, SliceAnalysis, StageRun
from storage.db import utcnow

UNFINISHED = ("pending", "processing")


# --- slices --------------------------------------------------------------------------------------


async def get_slice(session: AsyncSession, slice_id: uuid.UUID, *, fresh: bool = False) -> Slice | None:
    """The slice row; ``fresh`` re-reads it even if this session already holds it."""
    return await session.get(Slice, slice_id, populate_existing=fresh)


async def lock_slice(session: AsyncSession, slice_id: uuid.UUID) -> Slice | None:
    """The slice row, locked until the transaction ends, freshly read.

    PostgreSQL: ``SELECT … FOR UPDATE``. SQLite has no row locks and its driver runs reads
    outside the transaction, so a no-op UPDATE first takes the database's write lock: every
    read after it sees the latest commits, and no other writer commits until we are done.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(Slice).where(Slice.id == slice_id).values(status=Slice.status)
                              .execution_options(synchronize_session=False))
    q = select(Slice).where(Slice.id == slice_id).with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(q)).first()


def _same_speaker(s: Slice) -> Any:
    return and_(Slice.session_id == s.session_id, Slice.user_id == s.user_id, Slice.source == s.source,
                Slice.id != s.id)


async def previous_slice(session: AsyncSession, s: Slice) -> Slice | None:
    """The slice of the same speaker and source in the same session just before ``s``."""
    q = (select(Slice).where(_same_speaker(s), Slice.started_at < s.started_at)
         .order_by(Slice.started_at.desc(), Slice.seq.desc()).limit(1))
    return (await session.scalars(q)).first()


async def next_slice(session: AsyncSession, s: Slice) -> Slice | None:
    """The slice of the same speaker and source in the same session just after ``s``."""
    q = (select(Slice).where(_same_speaker(s), Slice.started_at > s.started_at)
         .order_by(Slice.started_at, Slice.seq).limit(1))
    return (await session.scalars(q)).first()


async def unfinished_slice_ids(session: AsyncSession, *, idle_since: datetime | None = None,
                               limit: int = 1000) -> list[uuid.UUID]:
    """Slices the pipeline has not finished, oldest first.

    With ``idle_since``: only those with no stage activity (start or finish) after that time,
    i.e. nobody is visibly working on them.
    """
    q = select(Slice.id).where(Slice.status.in_(UNFINISHED))
    if idle_since is not None:
        last = (select(func.max(func.coalesce(StageRun.finished_at, StageRun.started_at)))
                .where(StageRun.slice_id == Slice.id).scalar_subquery())
        q = q.where(Slice.created_at < idle_since, or_(last.is_(None), last < idle_since))
    q = q.order_by(Slice.started_at).limit(limit)
    return list((await session.scalars(q)).all())


async def failed_slices(session: AsyncSession, limit: int, offset: int) -> list[Slice]:
    q = select(Slice).where(Slice.status == "failed").order_by(Slice.started_at.desc()).limit(limit).offset(offset)
    return list((await session.scalars(q)).all())


# --- stage runs ----------------------------------------------------------------------------------


async def stage_runs(session: AsyncSession, slice_ids: Sequence[uuid.UUID]) -> list[StageRun]:
    if not slice_ids:
        return []
    q = select(StageRun).where(StageRun.slice_id.in_(list(slice_ids))).order_by(StageRun.slice_id, StageRun.stage)
    return list((await session.scalars(q)).all())


async def get_stage_run(session: AsyncSession, slice_id: uuid.UUID, stage: str) -> StageRun | None:
    q = (select(StageRun).where(StageRun.slice_id == slice_id, StageRun.stage == stage)
         .execution_options(populate_existing=True))
    return (await session.scalars(q)).first()


def _insert_ignore(session: AsyncSession, table: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` for the session's database."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database {name!r}")


async def ensure_stage_runs(session: AsyncSession, slice_id: uuid.UUID, stages: Sequence[str]) -> None:
    """Create the pending rows of ``stages`` for a slice; existing rows are left as they are."""
    for stage in stages:
        stmt = _insert_ignore(session, StageRun).values(
            id=uuid.uuid4(), slice_id=slice_id, stage=stage, status="pending", attempts=0)
        await session.execute(stmt)


async def reset_running(session: AsyncSession) -> int:
    """Stage runs left ``running`` by a dead process go back to ``pending``."""
    result = await session.execute(update(StageRun).where(StageRun.status == "running").values(status="pending"))
    return int(getattr(result, "rowcount", 0) or 0)


async def reset_unfinished_stages(session: AsyncSession, slice_id: uuid.UUID) -> None:
    """Every stage of the slice that is not done starts over (attempts and error cleared)."""
    await session.execute(
        update(StageRun).where(StageRun.slice_id == slice_id, StageRun.status != "done")
        .values(status="pending", attempts=0, error=None, started_at=None, finished_at=None)
        .execution_options(synchronize_session=False))


# --- analyses ------------------------------------------------------------------------------------


async def get_analysis(session: AsyncSession, slice_id: uuid.UUID) -> SliceAnalysis | None:
    return await session.get(SliceAnalysis, slice_id, populate_existing=True)


async def analysis_for_update(session: AsyncSession, slice_id: uuid.UUID) -> SliceAnalysis:
    """The slice's analysis row, created empty if there is none yet."""
    await session.execute(_insert_ignore(session, SliceAnalysis).values(
        slice_id=slice_id, transcript="", segments=[], ocr=[], updated_at=utcnow()))
    row = await get_analysis(session, slice_id)
    assert row is not None
    return row


# --- flags ---------------------------------------------------------------------------------------


async def insert_flag(session: AsyncSession, values: dict[str, Any]) -> uuid.UUID | None:
    """Insert one flag unless the same (slice, rule, start, fingerprint) is stored; its id if new."""
    stmt = _insert_ignore(session, Flag).values(**values).returning(Flag.id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def flags_of_slice(session: AsyncSession, slice_id: uuid.UUID) -> list[Flag]:
    q = select(Flag).where(Flag.slice_id == slice_id).order_by(Flag.start_ms, Flag.rule_id, Flag.fingerprint)
    return list((await session.scalars(q)).all())


async def count_flags(session: AsyncSession, slice_ids: Sequence[uuid.UUID] | None = None) -> int:
    q = select(func.count()).select_from(Flag)
    if slice_ids is not None:
        q = q.where(Flag.slice_id.in_(list(slice_ids)))
    return int((await session.scalar(q)) or 0)


# --- policies ------------------------------------------------------------------------------------


async def newest_active_policy(session: AsyncSession) -> PolicyVersion | None:
    q = (select(PolicyVersion).where(PolicyVersion.active.is_(True))
         .order_by(PolicyVersion.created_at.desc(), PolicyVersion.id.desc()).limit(1))
    return (await session.scalars(q)).first()


async def get_policy_version(session: AsyncSession, version: str) -> PolicyVersion | None:
    return (await session.scalars(select(PolicyVersion).where(PolicyVersion.version == version))).first()


async def add_policy_version(session: AsyncSession, row: PolicyVersion) -> None:
    session.add(row)
    await session.flush()


# --- privacy (cancellation, export) ---------------------------------------------------------------


async def analyses_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Slice, SliceAnalysis]]:
    q = (select(Slice, SliceAnalysis).join(SliceAnalysis, SliceAnalysis.slice_id == Slice.id)
         .where(Slice.user_id == user_id).order_by(Slice.started_at))
    return [(row[0], row[1]) for row in (await session.execute(q)).all()]


async def delete_analyses(session: AsyncSession, slice_ids: Sequence[uuid.UUID]) -> None:
    await session.execute(delete(SliceAnalysis).where(SliceAnalysis.slice_id.in_(list(slice_ids))))
