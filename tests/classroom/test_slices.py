"""Slices in the database: recorded only while the mic is on, playable, announced in the same
transaction, idempotent, and rebuilt from spool leftovers on start."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from classguard.settings import Settings
from classroom import events, lifecycle, service
from classroom.live import relay_of
from classroom.models import Slice
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.classroom.class_factories import attend, join, make_class
from tests.factories import logged_in

TOLERANCE = timedelta(seconds=0.4)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.segment_seconds = 2.0  # several slices per on-interval in a short test
    return settings


@pytest.fixture(autouse=True)
def classroom_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the classroom's side of the hook: no pipeline consumes the slices
    (the composition root's wiring to moderation is tested end to end elsewhere)."""
    monkeypatch.setattr(events, "slice_created_hooks", [])


def decode_audio(data: bytes, path: Path) -> tuple[int, float]:
    """(decoded frames, RMS on a 0..1 scale) of every packet of a WebM audio file."""
    path.write_bytes(data)
    frames, squares, samples = 0, 0.0, 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            pcm = frame.to_ndarray().astype(np.float64)
            if frame.format.name.startswith("s16"):
                pcm /= 32768.0
            squares += float((pcm ** 2).sum())
            samples += pcm.size
            frames += 1
    return frames, (squares / max(samples, 1)) ** 0.5


def on_intervals(trail: list[dict[str, Any]], user_id: str, source: str) -> list[tuple[datetime, datetime | None]]:
    out: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = None
    for e in trail:
        if e["user_id"] != user_id or e["source"] != source:
            continue
        at = datetime.fromisoformat(e["at"])
        if e["enabled"] and start is None:
            start = at
        elif not e["enabled"] and start is not None:
            out.append((start, at))
            start = None
    if start is not None:
        out.append((start, None))
    return out


async def test_mic_slices_only_inside_on_intervals_and_playable(client: httpx.AsyncClient, tmp_path: Path) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    student = await attend(sid, setup.student, "student")
    try:
        task = student.bot.publish_mic([(0.0, 3.0), (5.0, 7.0)])
        await asyncio.wait_for(task, 15)
        await asyncio.sleep(0.5)
    finally:
        await student.leave()

    moderator = await logged_in(client, "moderator")
    trail = (await client.get(f"/api/v1/sessions/{sid}/recording-events", headers=moderator.headers)).json()
    intervals = on_intervals(trail, setup.student.id, "mic")
    assert len(intervals) == 2 and all(end is not None for _, end in intervals), trail

    slices = (await client.get(f"/api/v1/sessions/{sid}/slices", headers=moderator.headers)).json()
    mic = [s for s in slices if s["source"] == "mic"]
    assert mic and {s["user_id"] for s in mic} == {setup.student.id}
    assert [s["seq"] for s in mic] == list(range(len(mic)))
    total = 0.0
    rt = get_runtime()
    for s in mic:
        start, end = datetime.fromisoformat(s["started_at"]), datetime.fromisoformat(s["ended_at"])
        inside = [iv for iv in intervals if iv[0] - TOLERANCE <= start and end <= iv[1] + TOLERANCE]  # type: ignore[operator]
        assert inside, f"slice {s['seq']} {start}–{end} is not inside an on-interval {intervals}"
        assert s["content_type"] == "audio/webm"  # (status belongs to the pipeline after creation)
        assert s["media_key"] == f"eu/slices/{sid}/{setup.student.id}/mic/{s['seq']:06d}.webm"
        data = await rt.media.get_bytes(s["media_key"])
        assert len(data) == s["size_bytes"]
        frames, rms = decode_audio(data, tmp_path / f"{s['seq']}.webm")
        assert frames > 0 and rms > 0.01, (s, frames, rms)  # the tone, not silence
        total += s["duration_s"]
    on_total = sum((end - start).total_seconds() for start, end in intervals if end is not None)
    assert abs(total - on_total) < 1.0, (total, on_total)
    assert {s["close_reason"] for s in mic} <= {"boundary", "disabled", "left"}
    # the spool keeps nothing once slices are stored
    assert not list((rt.settings.data_dir / "spool").rglob("*.webm*"))


async def _session_with_segment(client: httpx.AsyncClient, tmp_path: Path) -> tuple[str, str, Path]:
    """A live session and a real closed mic segment file (taken from a short recording)."""
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    student = await attend(sid, setup.student, "student")
    try:
        student.bot.publish_mic([(0.0, 1.5)])
        await asyncio.sleep(2.5)
    finally:
        await student.leave()
    moderator = await logged_in(client, "moderator")
    slices = (await client.get(f"/api/v1/sessions/{sid}/slices", headers=moderator.headers)).json()
    sample = tmp_path / "sample.webm"
    sample.write_bytes(await get_runtime().media.get_bytes(slices[0]["media_key"]))
    return sid, setup.student.id, sample


def _facts(sid: str, uid: str, path: Path, seq: int) -> service.SegmentFacts:
    now = datetime.now().astimezone()
    return service.SegmentFacts(room_id=uuid.UUID(sid), participant_id=uuid.UUID(uid), source="mic", path=path,
                                seq=seq, started_at=now - timedelta(seconds=1.5), ended_at=now, duration=1.5,
                                close_reason="disabled")


async def _count(session: AsyncSession, sid: str) -> int:
    return int(await session.scalar(select(func.count()).select_from(Slice)
                                    .where(Slice.session_id == uuid.UUID(sid))) or 0)


async def test_slice_is_announced_in_its_transaction_and_idempotent(client: httpx.AsyncClient,
                                                                    tmp_path: Path) -> None:
    sid, uid, sample = await _session_with_segment(client, tmp_path)
    rt = get_runtime()
    seen: list[tuple[uuid.UUID, bool]] = []

    async def hook(session: AsyncSession, slice_id: uuid.UUID) -> None:
        seen.append((slice_id, await session.get(Slice, slice_id) is not None))

    async def failing_hook(session: AsyncSession, slice_id: uuid.UUID) -> None:
        raise RuntimeError("pipeline enqueue failed")

    events.slice_created_hooks.append(hook)
    try:
        spool_file = tmp_path / "000050.webm"
        shutil.copyfile(sample, spool_file)
        first = await lifecycle.ingest_segment(rt, _facts(sid, uid, spool_file, 50))
        assert first is not None and seen == [(first, True)]
        assert not spool_file.exists()  # removed only after the commit
        shutil.copyfile(sample, spool_file)
        again = await lifecycle.ingest_segment(rt, _facts(sid, uid, spool_file, 50))
        assert again == first and len(seen) == 1  # re-announcing the same segment: no new slice, no new job

        events.slice_created_hooks.append(failing_hook)
        shutil.copyfile(sample, spool_file := tmp_path / "000051.webm")
        async with rt.sessionmaker() as s:
            before = await _count(s, sid)
        with pytest.raises(RuntimeError):
            await lifecycle.ingest_segment(rt, _facts(sid, uid, spool_file, 51))
        async with rt.sessionmaker() as s:
            assert await _count(s, sid) == before  # no slice without its job
        assert spool_file.exists()  # kept for the next start's recovery
    finally:
        events.slice_created_hooks.remove(hook)
        if failing_hook in events.slice_created_hooks:
            events.slice_created_hooks.remove(failing_hook)


async def test_leftovers_become_slices_or_are_discarded_with_a_log_line(
    client: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sid, uid, sample = await _session_with_segment(client, tmp_path)
    rt = get_runtime()
    relay = relay_of(rt)
    assert relay is not None
    seg_dir = lifecycle.spool_dir_of(rt) / sid / uid / "mic"
    seg_dir.mkdir(parents=True, exist_ok=True)
    data = sample.read_bytes()
    (seg_dir / "000070.webm.part").write_bytes(data[: int(len(data) * 0.7)])  # cut mid-write by a crash
    (seg_dir / "000071.webm.part").write_bytes(b"\x1a\x45\xdf\xa3 not really webm")
    (seg_dir / "000072.webm.part").write_bytes(b"")

    with caplog.at_level(logging.INFO):
        created = await lifecycle.recover(rt, relay)
    assert len(created) == 1
    async with unit_of_work(rt.sessionmaker) as s:
        row = await s.get(Slice, created[0])
        assert row is not None and row.seq == 70 and row.close_reason == "crash-recovered"
        key = row.media_key
    frames, _ = decode_audio(await rt.media.get_bytes(key), tmp_path / "recovered.webm")
    assert frames > 0
    discarded = [r.getMessage() for r in caplog.records if "discarding" in r.getMessage()]
    assert any("000071" in m for m in discarded) and any("000072" in m for m in discarded)
    assert not list(seg_dir.iterdir())  # nothing broken is left to be picked up again


async def test_leaving_mid_segment_closes_a_playable_last_slice(client: httpx.AsyncClient, tmp_path: Path) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    student = await attend(sid, setup.student, "student")
    student.bot.publish_mic()
    await asyncio.sleep(3.0)  # one 2 s slice closed, the next one open when the student leaves
    await student.leave()
    moderator = await logged_in(client, "moderator")

    async def mic() -> list[dict[str, Any]]:
        rows = (await client.get(f"/api/v1/sessions/{sid}/slices", headers=moderator.headers)).json()
        return [s for s in rows if s["source"] == "mic"]

    deadline = asyncio.get_running_loop().time() + 10
    while not any(s["close_reason"] == "left" for s in await mic()):
        assert asyncio.get_running_loop().time() < deadline, await mic()
        await asyncio.sleep(0.2)
    rows = await mic()
    assert [s["close_reason"] for s in rows] == ["boundary", "left"]
    last = rows[-1]
    frames, _ = decode_audio(await get_runtime().media.get_bytes(last["media_key"]), tmp_path / "last.webm")
    assert frames > 0 and last["duration_s"] > 0.3
