"""Celery worker entry point for the scale-out mode: every registered task, one queue per stage.

Run: ``celery -A classguard.celery_app worker -Q media,asr,vision,rules,default``.
Each Celery task runs the same async task function as the in-process workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from classguard.bootstrap import build_runtime, load_domains
from classguard.settings import get_settings
from storage import jobs

_loop: asyncio.AbstractEventLoop | None = None


def _run(coro: Any) -> Any:
    # One loop per worker process so the engine's connections stay on the loop that made them.
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
        settings = get_settings()
        rt = build_runtime(settings)
        _ = rt
    return _loop.run_until_complete(coro)


def make_celery(broker_url: str) -> Celery:
    app = Celery("classguard", broker=broker_url, backend=None)
    app.conf.update(
        task_acks_late=True,  # at-least-once: a killed worker's job is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        broker_connection_retry_on_startup=True,
    )
    load_domains()
    for spec in jobs.REGISTRY.values():
        _register(app, spec)
    return app


def _register(app: Celery, spec: jobs.TaskSpec) -> None:
    settings = get_settings()

    @app.task(name=spec.name, bind=True, max_retries=settings.task_max_attempts - 1)
    def _task(self: Any, **kwargs: Any) -> None:
        try:
            _run(spec.fn(**kwargs))
        except Exception as exc:
            delay = settings.task_retry_base_seconds * 2**self.request.retries
            raise self.retry(exc=exc, countdown=delay) from exc


@worker_process_init.connect
def _reset_loop(**_: Any) -> None:
    global _loop
    _loop = None


app = make_celery(get_settings().redis_url)
