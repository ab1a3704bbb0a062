"""Privacy promises 4–6 for recordings: retention sweep with legal hold, deletion on cancellation,
recordings listed in the user's data export."""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from classguard.maintenance import sweep_once
from classroom import events, lifecycle
from classroom.models import Slice
from storage.db import unit_of_work, utcnow
from storage.jobs import InProcessDispatcher
from storage.runtime import get_runtime
from tests.classroom.test_slices import _facts, _session_with_segment
from tests.factories import TestUser


@pytest.fixture(autouse=True)
def classroom_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "slice_created_hooks", [])


async def _slices(client: httpx.AsyncClient, tmp_path: Path, n: int) -> tuple[str, str, list[uuid.UUID]]:
    sid, uid, sample = await _session_with_segment(client, tmp_path)
    ids = []
    for seq in range(100, 100 + n):
        spool = tmp_path / f"{seq:06d}.webm"
        shutil.copyfile(sample, spool)
        slice_id = await lifecycle.ingest_segment(get_runtime(), _facts(sid, uid, spool, seq))
        assert slice_id is not None
        ids.append(slice_id)
    return sid, uid, ids


async def test_retention_deletes_old_media_but_keeps_rows_and_held_evidence(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    rt = get_runtime()
    _, _, (old, held, fresh) = await _slices(client, tmp_path, 3)
    past = utcnow() - timedelta(days=rt.settings.media_retention_days + 1)
    async with unit_of_work(rt.sessionmaker) as s:
        await s.execute(update(Slice).where(Slice.id.in_([old, held])).values(created_at=past))
        await s.execute(update(Slice).where(Slice.id == held).values(legal_hold=True))
    report = await sweep_once(rt)
    assert report.per_source["slices"] >= 1
    async with rt.sessionmaker() as s:
        rows = {sid: await s.get(Slice, sid) for sid in (old, held, fresh)}
    gone = rows[old]
    assert gone is not None and gone.media_deleted_at is not None
    assert not await rt.media.exists(gone.media_key)
    for keep in (held, fresh):
        row = rows[keep]
        assert row is not None and row.media_deleted_at is None
        assert await rt.media.exists(row.media_key)
    # a second sweep finds nothing more to do
    assert (await sweep_once(rt)).per_source["slices"] == 0


async def test_cancellation_deletes_recordings_and_export_lists_them(
        client: httpx.AsyncClient, tmp_path: Path) -> None:
    rt = get_runtime()
    _, uid, ids = await _slices(client, tmp_path, 2)
    # the student is the one recorded; log them in to export and cancel
    async with rt.sessionmaker() as s:
        keys = [(await s.get(Slice, i)).media_key for i in ids]  # type: ignore[union-attr]
    from accounts.models import User

    async with rt.sessionmaker() as s:
        email = (await s.get(User, uuid.UUID(uid))).email  # type: ignore[union-attr]
    assert email
    me = TestUser(id=uid, email=email, password="correct horse battery", role="student")
    r = await client.post("/api/v1/auth/login", json={"identifier": email, "password": me.password})
    me.token = r.json()["token"]
    export = (await client.get("/api/v1/me/export", headers=me.headers)).json()
    assert {r["id"] for r in export["classroom"]["recordings"]} >= {str(i) for i in ids}
    assert export["classroom"]["recording_events"]

    assert (await client.post("/api/v1/me/cancel", json={"password": me.password}, headers=me.headers)
            ).status_code == 204
    dispatcher = rt.dispatcher
    assert isinstance(dispatcher, InProcessDispatcher)
    await dispatcher.join(timeout=30)
    for key in keys:
        assert not await rt.media.exists(key)
    async with rt.sessionmaker() as s:
        rows = [await s.get(Slice, i) for i in ids]
    assert all(row is not None and row.media_deleted_at is not None for row in rows)
