"""The generic retention sweep: expired media deleted, held media kept, a failing hold keeps everything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from classguard.settings import Settings
from storage import retention
from storage.db import make_engine, make_sessionmaker
from storage.media import LocalMediaStore
from storage.retention import Candidate

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class FakeSlices:
    """A source standing in for a domain's table of slices: ref -> (created, key, purged)."""

    name = "test-slices"

    def __init__(self, rows: dict[str, tuple[datetime, str]]) -> None:
        self.rows = rows
        self.purged: list[str] = []

    async def find_expired(self, session: AsyncSession, older_than: datetime, limit: int) -> Sequence[Candidate]:
        out = [Candidate(key, ref) for ref, (at, key) in sorted(self.rows.items())
               if at < older_than and ref not in self.purged]
        return out[:limit]

    async def mark_purged(self, session: AsyncSession, candidates: Sequence[Candidate]) -> None:
        self.purged.extend(c.ref for c in candidates)


Env = tuple[async_sessionmaker[AsyncSession], LocalMediaStore, FakeSlices]


@pytest.fixture
async def env(settings: Settings, tmp_path: Path) -> AsyncIterator[Env]:
    engine = make_engine(settings.database_url)
    store = LocalMediaStore(tmp_path / "media")
    rows = {}
    for i in range(25):
        key = f"rec/s{i:02d}.webm"
        await store.put(key, b"x")
        rows[f"s{i:02d}"] = (NOW - timedelta(days=40 if i < 20 else 1), key)
    yield make_sessionmaker(engine), store, FakeSlices(rows)
    retention.HOLDS.clear()
    await engine.dispose()


async def test_sweep_deletes_expired_unheld_media(env: Env) -> None:
    sm, store, source = env

    async def open_cases(session: AsyncSession, cands: Sequence[Candidate]) -> set[str]:
        return {c.ref for c in cands if c.ref in {"s03", "s11", "s12"}}

    retention.register_hold("open-cases", open_cases)
    report = await retention.sweep(sm, store, NOW - timedelta(days=30), batch_size=4, sources=[source])
    assert report.deleted == 17 and report.per_source == {"test-slices": 17}
    assert sorted(source.purged) == sorted(f"s{i:02d}" for i in range(20) if i not in (3, 11, 12))
    left = await store.list("rec/")
    assert left == sorted([f"rec/s{i:02d}.webm" for i in (3, 11, 12)] + [f"rec/s{i:02d}.webm" for i in range(20, 25)])


async def test_everything_held_terminates(env: Env) -> None:
    sm, store, source = env

    async def hold_all(session: AsyncSession, cands: Sequence[Candidate]) -> set[str]:
        return {c.ref for c in cands}

    retention.register_hold("all", hold_all)
    report = await retention.sweep(sm, store, NOW - timedelta(days=30), batch_size=3, sources=[source])
    assert report.deleted == 0 and report.held == 20
    assert len(await store.list("")) == 25


async def test_failing_hold_keeps_the_media(env: Env) -> None:
    sm, store, source = env

    async def broken(session: AsyncSession, cands: Sequence[Candidate]) -> set[str]:
        raise RuntimeError("moderation database unreachable")

    retention.register_hold("broken", broken)
    report = await retention.sweep(sm, store, NOW - timedelta(days=30), sources=[source])
    assert report.deleted == 0 and source.purged == []
    assert len(await store.list("")) == 25
