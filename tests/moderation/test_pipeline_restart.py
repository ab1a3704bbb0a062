"""Restarts: the pipeline resumes unfinished slices from the database, and a worker killed in the
middle of a slice's speech recognition, once restarted, yields exactly the flags of a clean run,
once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from classguard.app import create_app
from classguard.bootstrap import start_runtime, stop_runtime
from classguard.cli.common import free_port
from classguard.settings import Settings
from moderation.models import Flag, StageRun
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.classroom.live_server import CLI
from tests.conftest import MODELS_DIR, TEST_BLIND_KEY, TEST_KEYS
from tests.moderation import fixtures
from tests.moderation.slice_factory import add_raw_slice, add_slice, live_room
from tests.processes import stop_process

pytestmark = pytest.mark.slow

SENTENCE = ("Hello class. If you want extra practice you can text me, "
            "my number is four one five two zero three seven eight six six.")
FLAG_FIELDS = ("rule_id", "rule_version", "policy_version", "category", "severity", "start_ms", "end_ms", "quote",
               "fingerprint")


def long_talk() -> Path:
    """~45 s of speech (ASR takes a few seconds on it: long enough to be caught mid-way)."""
    filler = fixtures.speech("Now let us look at the next exercise together and take our time with it.")
    return fixtures.transcode(fixtures.concat([filler, 0.5, filler, 0.5, filler, 0.5, fixtures.speech(SENTENCE),
                                               0.5, filler, 0.5, filler, 1.0]), ".webm")


async def flag_rows(slice_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        flags = (await s.scalars(select(Flag).where(Flag.slice_id == slice_id))).all()
    return sorted(tuple(getattr(f, k) for k in FLAG_FIELDS) for f in flags)


async def test_restart_resumes_slices_whose_jobs_were_lost(settings: Settings) -> None:
    """A slice stored while no job reached a worker (crash between commit and dispatch) is
    picked up by the next start, from the database alone."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        room = await live_room()
        speech = fixtures.transcode(fixtures.concat([fixtures.speech(SENTENCE), 1.0]), ".webm")
        sid = await add_raw_slice(room, speech.read_bytes(), announce=False)
        await get_runtime().dispatcher.join(timeout=60)  # type: ignore[attr-defined]
        async with unit_of_work(get_runtime().sessionmaker) as s:
            runs = (await s.scalars(select(StageRun).where(StageRun.slice_id == sid))).all()
        assert runs == []  # nothing knows about it yet

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await get_runtime().dispatcher.join(timeout=300)  # type: ignore[attr-defined]
        async with unit_of_work(get_runtime().sessionmaker) as s:
            runs = (await s.scalars(select(StageRun).where(StageRun.slice_id == sid))).all()
        assert sorted((r.stage, r.status) for r in runs) == [("asr", "done"), ("media", "done"), ("rules", "done")]
        assert any(r[0] == "contact.phone" for r in await flag_rows(sid))



def _serve(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``classguard serve`` (embedded mode: in-process workers) on the test's database and media."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSGUARD_")}
    env.update({
        "CLASSGUARD_MODELS_DIR": str(MODELS_DIR),
        "CLASSGUARD_DATA_DIR": str(settings.data_dir),
        "CLASSGUARD_DATABASE_URL": settings.database_url,
        "CLASSGUARD_ENCRYPTION_KEYS": json.dumps(TEST_KEYS),
        "CLASSGUARD_ENCRYPTION_ACTIVE_KEY_ID": "k1",
        "CLASSGUARD_BLIND_INDEX_KEY": TEST_BLIND_KEY,
        "CLASSGUARD_TASK_RETRY_BASE_SECONDS": "0.1",
    })
    with log.open("ab") as out:
        return subprocess.Popen([CLI, "serve", "--port", str(free_port())], env=env, cwd=settings.data_dir,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path,
              timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"server exited while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, args).fetchall()


async def test_worker_killed_mid_asr_restarts_to_the_same_flags_once(settings: Settings, tmp_path: Path) -> None:
    media = long_talk()
    # The clean run: the same recording through the in-process workers of this test process.
    await start_runtime(settings, lifecycle=False)
    try:
        room = await live_room(students=1)
        clean = await add_slice(room, media, duration=45.0)
        await get_runtime().dispatcher.join(timeout=300)  # type: ignore[attr-defined]
        expected = await flag_rows(clean)
        # The slice for the worker to be killed over: stored, its job lost with this process.
        victim = await add_raw_slice(room, media.read_bytes(), user_id=room.speakers[1], duration=45.0,
                                     announce=False)
    finally:
        await stop_runtime()
    assert any(r[0] == "contact.phone" for r in expected), expected

    db = Path(settings.database_url.split("///", 1)[1])
    hex_id = victim.hex  # SQLite stores UUIDs as 32 hex digits

    def stage(name: str) -> str | None:
        rows = _query(db, "SELECT status FROM moderation_stage_runs WHERE slice_id = ? AND stage = ?", hex_id, name)
        return rows[0][0] if rows else None

    log = tmp_path / "serve.log"
    proc = _serve(settings, log)
    try:
        _wait_for("the ASR stage to run", lambda: stage("asr") == "running", proc, log)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stage("asr") == "running" and stage("rules") == "pending"
    assert _query(db, "SELECT count(*) FROM moderation_flags WHERE slice_id = ?", hex_id) == [(0,)]

    proc = _serve(settings, log)
    try:
        _wait_for("the slice to finish", lambda: _query(db, "SELECT status FROM slices WHERE id = ?", hex_id)
                  in ([("done",)], [("failed",)]), proc, log)
    finally:
        stop_process(proc)

    await start_runtime(settings, start_workers=False, lifecycle=False)
    try:
        got = await flag_rows(victim)
        async with unit_of_work(get_runtime().sessionmaker) as s:
            runs = {r.stage: r for r in (await s.scalars(select(StageRun).where(StageRun.slice_id == victim))).all()}
    finally:
        await stop_runtime()
    assert {k: r.status for k, r in runs.items()} == {"media": "done", "asr": "done", "rules": "done"}
    assert runs["asr"].attempts == 2  # the killed attempt and the one after the restart
    assert got == expected  # the same flags as the clean run, each once
