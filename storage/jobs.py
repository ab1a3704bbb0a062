"""Background jobs: a registry of task functions and two dispatchers that run them.

Tasks are ``async def`` functions that take ids (never ORM objects) and reload what they need,
so the same function runs in the in-process workers (embedded mode) and in Celery workers
(scale-out). Jobs are enqueued on a DB session and only leave after that session commits;
a rollback drops them. Delivery is at-least-once: every task must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger("classguard.jobs")

TaskFn = Callable[..., Awaitable[Any]]
_PENDING = "classguard_pending_jobs"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    fn: TaskFn
    queue: str


REGISTRY: dict[str, TaskSpec] = {}


def task(name: str, queue: str = "default") -> Callable[[TaskFn], TaskFn]:
    """Register an async task function under a stable name and a queue (stage)."""

    def deco(fn: TaskFn) -> TaskFn:
        REGISTRY[name] = TaskSpec(name, fn, queue)
        return fn

    return deco


def enqueue(session: AsyncSession, name: str, **kwargs: Any) -> None:
    """Send job ``name(**kwargs)`` once ``session`` commits (dropped if it rolls back)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown task {name!r}")
    session.sync_session.info.setdefault(_PENDING, []).append((name, kwargs))


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


async def dispatch_committed(session: AsyncSession) -> None:
    """Hand the jobs of a committed session to the dispatcher of this process."""
    pending: list[tuple[str, dict[str, Any]]] = session.sync_session.info.pop(_PENDING, [])
    if not pending:
        return
    from storage.runtime import get_runtime

    dispatcher = get_runtime().dispatcher
    for name, kwargs in pending:
        await dispatcher.submit(name, kwargs)


class Dispatcher(Protocol):
    async def submit(self, name: str, kwargs: dict[str, Any]) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class InProcessDispatcher:
    """Runs jobs on this event loop with bounded concurrency and retries with backoff.

    Heavy work inside a task must go to a thread or process (``asyncio.to_thread``); the task
    itself only orchestrates. Jobs in memory are lost on a crash by design: each domain
    resumes its unfinished work from the database on start (see ``classguard.workers``).
    """

    def __init__(self, concurrency: int = 2, max_attempts: int = 4, retry_base: float = 1.0) -> None:
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self._queue: asyncio.Queue[tuple[str, dict[str, Any], int]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, name: str, kwargs: dict[str, Any]) -> None:
        self._idle.clear()
        self._inflight += 1
        await self._queue.put((name, kwargs, 1))

    async def start(self) -> None:
        for i in range(self.concurrency):
            self._workers.append(asyncio.create_task(self._work(), name=f"classguard-worker-{i}"))

    async def stop(self) -> None:
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def join(self, timeout: float | None = None) -> None:
        """Wait until every submitted job (and the jobs they submitted) has finished."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def _work(self) -> None:
        while True:
            name, kwargs, attempt = await self._queue.get()
            try:
                await REGISTRY[name].fn(**kwargs)
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt < self.max_attempts:
                    delay = self.retry_base * 2 ** (attempt - 1) * (0.5 + random.random())
                    log.warning("job %s %s failed (attempt %d), retrying in %.1fs", name, kwargs, attempt,
                                delay, exc_info=True)
                    self._inflight += 1
                    asyncio.get_running_loop().call_later(
                        delay, self._queue.put_nowait, (name, kwargs, attempt + 1)
                    )
                else:
                    log.exception("job %s %s failed for good after %d attempts", name, kwargs, attempt)
            finally:
                self._inflight -= 1
                if self._inflight == 0:
                    self._idle.set()


class TaskSender(Protocol):
    """What the dispatcher needs of a Celery app: ``send_task`` (the root builds the app)."""

    def send_task(self, name: str, *, kwargs: dict[str, Any], queue: str) -> Any: ...


class CeleryDispatcher:
    """Sends jobs to Celery workers over Redis, one queue per stage.

    The Celery app is handed in by the composition root (``classguard.celery_app.make_celery``),
    so the kit never imports the root.
    """

    def __init__(self, app: TaskSender) -> None:
        self.app = app

    async def submit(self, name: str, kwargs: dict[str, Any]) -> None:
        spec = REGISTRY[name]
        await asyncio.to_thread(self.app.send_task, name, kwargs=kwargs, queue=spec.queue)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
