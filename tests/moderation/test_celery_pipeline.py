"""The scale-out mode: the same task functions in a real Celery worker over the real Redis, one
queue per stage. The flags must equal an in-process run's; a pool process killed mid-ASR has
its job redelivered and the slice still ends with the same flags, once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from classguard.app import create_app
from classguard.bootstrap import start_runtime, stop_runtime
from classguard.settings import Settings
from classroom.models import Slice
from moderation.models import Flag, StageRun
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.conftest import MODELS_DIR, REDIS_URL, TEST_BLIND_KEY, TEST_KEYS, make_settings
from tests.moderation import fixtures
from tests.moderation.slice_factory import add_slice, live_room
from tests.processes import stop_process

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CELERY = str(Path(sys.executable).with_name("celery"))
SENTENCE = ("Hello class. If you want extra practice you can text me, "
            "my number is four one five two zero three seven eight six six.")
FLAG_FIELDS = ("rule_id", "rule_version", "policy_version", "category", "start_ms", "end_ms", "quote", "fingerprint")
QUEUES = ("media", "asr", "vision", "rules")


@pytest.fixture
def celery_settings(settings: Settings) -> Settings:
    return make_settings(settings.data_dir, database_url=settings.database_url, worker_mode="celery",
                         redis_url=REDIS_URL)


@pytest.fixture
def worker(celery_settings: Settings, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``celery -A classguard.celery_app worker`` with one pool process, on the test's database."""
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    r.delete(*QUEUES)  # leftovers of an earlier, interrupted run would only be no-ops, but cost time
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSGUARD_")}
    env.update({
        "CLASSGUARD_MODELS_DIR": str(MODELS_DIR),
        "CLASSGUARD_DATA_DIR": str(celery_settings.data_dir),
        "CLASSGUARD_DATABASE_URL": celery_settings.database_url,
        "CLASSGUARD_WORKER_MODE": "celery",
        "CLASSGUARD_REDIS_URL": REDIS_URL,
        "CLASSGUARD_ENCRYPTION_KEYS": json.dumps(TEST_KEYS),
        "CLASSGUARD_ENCRYPTION_ACTIVE_KEY_ID": "k1",
        "CLASSGUARD_BLIND_INDEX_KEY": TEST_BLIND_KEY,
        "CLASSGUARD_TASK_RETRY_BASE_SECONDS": "0.2",
    })
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CELERY, "-A", "classguard.celery_app", "worker", "-Q", ",".join(QUEUES), "-c", "1",
             "--pool", "prefork", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
            env=env, cwd=celery_settings.data_dir, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, log
    finally:
        stop_process(proc)
        r.delete(*QUEUES)


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def speech_webm() -> Path:
    return fixtures.transcode(fixtures.concat([fixtures.speech(SENTENCE), 1.0]), ".webm")


async def flag_rows(slice_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        flags = (await s.scalars(select(Flag).where(Flag.slice_id == slice_id))).all()
    return sorted(tuple(getattr(f, k) for k in FLAG_FIELDS) for f in flags)


async def in_process_flags(settings: Settings, media: Path) -> list[tuple[Any, ...]]:
    await start_runtime(settings, lifecycle=False)
    try:
        room = await live_room()
        sid = await add_slice(room, media)
        await get_runtime().dispatcher.join(timeout=300)  # type: ignore[attr-defined]
        return await flag_rows(sid)
    finally:
        await stop_runtime()


async def stage_status(slice_id: uuid.UUID) -> dict[str, tuple[str, int]]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        runs = (await s.scalars(select(StageRun).where(StageRun.slice_id == slice_id))).all()
    return {r.stage: (r.status, r.attempts) for r in runs}


async def wait_until_finished(slice_id: uuid.UUID, log: Path, proc: subprocess.Popen[bytes],
                              timeout: float = 240) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with unit_of_work(get_runtime().sessionmaker) as s:
            status = await s.scalar(select(Slice.status).where(Slice.id == slice_id))
        if status in ("done", "failed"):
            return str(status)
        if proc.poll() is not None:
            raise AssertionError(f"worker exited:\n{tail(log)}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"slice not finished in {timeout} s:\n{tail(log)}")


async def test_celery_worker_gives_the_same_flags_as_the_in_process_run(
    settings: Settings, celery_settings: Settings, worker: tuple[subprocess.Popen[bytes], Path]
) -> None:
    media = speech_webm()
    expected = await in_process_flags(settings, media)
    assert any(r[0] == "contact.phone" for r in expected), expected

    proc, log = worker
    app = create_app(celery_settings)
    async with app.router.lifespan_context(app):
        assert type(get_runtime().dispatcher).__name__ == "CeleryDispatcher"
        room = await live_room()
        sid = await add_slice(room, media)
        assert await wait_until_finished(sid, log, proc) == "done"
        assert await flag_rows(sid) == expected
        assert await stage_status(sid) == {"media": ("done", 1), "asr": ("done", 1), "rules": ("done", 1)}
    text = log.read_text()
    for name in ("moderation.media", "moderation.asr", "moderation.rules"):
        assert f"Task {name}[" in text and "succeeded" in text


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def test_celery_pool_process_killed_mid_asr_is_redelivered_to_the_same_flags_once(
    settings: Settings, celery_settings: Settings, worker: tuple[subprocess.Popen[bytes], Path]
) -> None:
    filler = fixtures.speech("Now let us look at the next exercise together and take our time with it.")
    media = fixtures.transcode(fixtures.concat([filler, 0.5, filler, 0.5, fixtures.speech(SENTENCE), 0.5,
                                                filler, 0.5, filler, 1.0]), ".webm")
    expected = await in_process_flags(settings, media)

    proc, log = worker
    app = create_app(celery_settings)
    async with app.router.lifespan_context(app):
        room = await live_room()
        sid = await add_slice(room, media, duration=40.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 180
        while (await stage_status(sid)).get("asr", ("", 0))[0] != "running":
            assert loop.time() < deadline, tail(log)
            await asyncio.sleep(0.02)
        children = _children(proc.pid)
        assert children, "the worker has no pool process"
        for child in children:
            os.kill(child, signal.SIGKILL)  # the pool process dies mid-ASR; the main process stays

        assert await wait_until_finished(sid, log, proc) == "done"
        assert await flag_rows(sid) == expected
        status = await stage_status(sid)
        assert status["asr"] == ("done", 2) and status["rules"] == ("done", 1)
    assert "WorkerLostError" in log.read_text() or "signal 9" in log.read_text()
