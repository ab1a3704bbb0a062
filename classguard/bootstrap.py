"""Builds and tears down the process runtime, and discovers the domain packages' parts.

Each domain may provide ``endpoints.router``, ``tasks`` (registers jobs), ``models`` and a
``lifecycle`` module with ``async startup(rt)`` / ``async shutdown(rt)``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
from types import ModuleType

from classguard.settings import Settings
from storage.db import make_engine, make_sessionmaker
from storage.jobs import CeleryDispatcher, Dispatcher, InProcessDispatcher
from storage.migrate import DOMAINS
from storage.runtime import Runtime, get_runtime, set_runtime

log = logging.getLogger("classguard")


def domain_modules(part: str) -> list[ModuleType]:
    """Import ``<domain>.<part>`` for every domain that has it (import errors are not hidden)."""
    mods = []
    for d in DOMAINS:
        name = f"{d}.{part}"
        if importlib.util.find_spec(d) is not None and importlib.util.find_spec(name) is not None:
            mods.append(importlib.import_module(name))
    return mods


def load_domains() -> None:
    domain_modules("models")
    domain_modules("tasks")
    import classguard.wiring  # noqa: F401  (connects domain hooks, e.g. slice closed -> moderation)


def speech_model_error(settings: Settings) -> str | None:
    """Why the configured speech model cannot be used (missing, corrupt, unknown), or None.

    Checked before a process that runs ASR starts serving, so a broken install is one clear line
    at start-up rather than every slice failing later. Cheap: the sha256 check is cached by size
    and mtime (``moderation.asr_models``)."""
    from moderation.asr_models import AsrModelError, resolve

    try:
        resolve(settings.asr_model or None, settings.speech_models_dir)
    except AsrModelError as exc:
        return str(exc)
    return None


def build_runtime(settings: Settings, *, dispatcher: Dispatcher | None = None) -> Runtime:
    from storage.crypto import FieldCipher
    from storage.media import build_media_store

    load_domains()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url, settings.database_echo, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow, pool_timeout=settings.db_pool_timeout_seconds)
    if dispatcher is None:
        if settings.worker_mode == "celery":
            # The root builds the Celery app and hands it to the kit's dispatcher.
            from classguard.celery_app import make_celery

            dispatcher = CeleryDispatcher(make_celery(settings.redis_url, settings))
        else:
            dispatcher = InProcessDispatcher(
                settings.inprocess_concurrency, settings.task_max_attempts, settings.task_retry_base_seconds
            )
    rt = Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        media=build_media_store(settings),
        cipher=FieldCipher.from_settings(settings),
        dispatcher=dispatcher,
    )
    set_runtime(rt)
    return rt


async def start_runtime(settings: Settings, *, start_workers: bool = True, lifecycle: bool = True) -> Runtime:
    """Build the runtime; optionally start in-process workers and the domains' startup hooks."""
    rt = build_runtime(settings)
    rt.extras["lifecycle"] = lifecycle
    if start_workers:
        await rt.dispatcher.start()
    if lifecycle:
        for mod in domain_modules("lifecycle"):
            if hasattr(mod, "startup"):
                await mod.startup(rt)
        if settings.retention_sweep_interval_seconds > 0:
            from classguard.maintenance import retention_loop

            rt.extras["retention_task"] = asyncio.create_task(retention_loop(rt), name="retention")
    return rt


async def stop_runtime() -> None:
    rt = get_runtime()
    if (sweeper := rt.extras.get("retention_task")) is not None:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
    if rt.extras.get("lifecycle"):
        for mod in reversed(domain_modules("lifecycle")):
            if hasattr(mod, "shutdown"):
                await mod.shutdown(rt)
    await rt.dispatcher.stop()
    await rt.engine.dispose()
    set_runtime(None)
