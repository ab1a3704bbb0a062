"""Celery worker entry point for the scale-out mode: every registered task, one queue per stage.

Run: ``celery -A classguard.celery_app worker -Q media,asr,vision,rules,default`` (or one
queue per machine: ``-Q asr`` on the speech nodes). Settings come from the environment
(``CLASSGUARD_*``), as for every other process. Each Celery task runs the same async task
function as the in-process workers, on one event loop per worker process.

Delivery: acks late (a job is acknowledged once it ran), a job whose worker process died is
requeued at once (``task_reject_on_worker_lost``), and Redis hands an unacknowledged job of a
vanished worker to another after ``lease_seconds`` (``visibility_timeout``). Task failures are
retried with exponential backoff up to ``task_max_attempts``; the tasks themselves are
idempotent, so a job that runs twice does no harm.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, worker_process_init

from classguard.bootstrap import build_runtime, load_domains, speech_model_error
from classguard.settings import Settings, get_settings
from storage import after_commit, jobs

log = logging.getLogger("classguard.celery")

_loop: asyncio.AbstractEventLoop | None = None


def _run(coro: Any) -> Any:
    # One loop per worker process so the engine's connections stay on the loop that made them;
    # the runtime (engine, media store, dispatcher) is built lazily in the process that runs tasks.
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
        build_runtime(get_settings())
    return _loop.run_until_complete(_with_after_commit(coro))


async def _with_after_commit(coro: Any) -> Any:
    # What a job's commit started (e.g. a sanction's live disconnect, published over Redis) must
    # finish with the job: the loop does not run between jobs.
    try:
        return await coro
    finally:
        await after_commit.drain()


def make_celery(broker_url: str, settings: Settings | None = None) -> Celery:
    """A Celery app that knows every registered task and routes each to its stage's queue."""
    settings = settings or get_settings()
    app = Celery("classguard", broker=broker_url, backend=None)
    load_domains()
    app.conf.update(
        task_acks_late=True,  # at-least-once: a killed worker's job is redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a long ASR job must not sit on jobs another worker could run
        task_default_queue="default",
        task_routes={spec.name: {"queue": spec.queue} for spec in jobs.REGISTRY.values()},
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": max(60, int(settings.lease_seconds))},
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    for spec in jobs.REGISTRY.values():
        _register(app, spec, settings)
    return app


def _register(app: Celery, spec: jobs.TaskSpec, settings: Settings) -> None:
    max_retries = max(0, settings.task_max_attempts - 1)
    base = settings.task_retry_base_seconds

    @app.task(name=spec.name, bind=True, max_retries=max_retries, acks_late=True)
    def _task(self: Any, **kwargs: Any) -> None:
        try:
            _run(spec.fn(**kwargs))
        except Exception as exc:
            if self.request.retries >= max_retries:
                log.exception("job %s %s failed for good", spec.name, kwargs)
                raise
            delay = base * 2**self.request.retries
            raise self.retry(exc=exc, countdown=delay) from exc


@celeryd_init.connect
def _check_speech_model(options: dict[str, Any] | None = None, **_: Any) -> None:
    # A worker that takes ASR jobs (-Q with asr, or no -Q: every queue) refuses to start without a
    # usable model, instead of failing every slice. SystemExit: Celery logs and swallows Exceptions
    # raised by signal handlers.
    queues = (options or {}).get("queues") or []
    if isinstance(queues, str):
        queues = queues.split(",")
    if queues and "asr" not in queues:
        return
    problem = speech_model_error(get_settings())
    if problem:
        print(f"error: cannot start: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(1)


@worker_process_init.connect
def _reset_loop(**_: Any) -> None:
    # A forked child must not reuse the parent's loop or connections.
    global _loop
    _loop = None


app = make_celery(get_settings().redis_url)
