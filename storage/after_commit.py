"""Side effects that must wait for the transaction: relay controls (mute, remove, end), and
the sign-out / sanction hooks accounts fires (``accounts.events``).

Services only flush; a control on the live relay must not run before the state it reflects is
committed, and must never run inside the transaction: the relay's callbacks write to the
database themselves, and on SQLite they would wait on the very write lock the open
transaction holds. So a service queues the action on the session; it is started as a task once
the session commits and dropped if it rolls back (as ``storage.jobs`` does for jobs).
Domain-neutral, so accounts (which knows only storage) can use it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger("classguard.after_commit")

Action = Callable[[], Awaitable[object]]
_KEY = "classguard_after_commit"
_running: set[asyncio.Task[None]] = set()


def after_commit(session: AsyncSession, action: Action, label: str) -> None:
    """Run ``action()`` (a coroutine factory) as a task once ``session`` commits."""
    session.sync_session.info.setdefault(_KEY, []).append((action, label))


async def _run(action: Action, label: str) -> None:
    try:
        await action()
    except Exception:  # the committed state stands; the live side is best effort
        log.exception("after-commit action %s failed", label)


@event.listens_for(Session, "after_commit")
def _start_after_commit(session: Session) -> None:
    pending = session.info.pop(_KEY, [])
    if not pending:
        return
    loop = asyncio.get_running_loop()  # commit runs on the event loop thread (greenlet)
    for action, label in pending:
        task = loop.create_task(_run(action, label), name=f"after-commit {label}")
        _running.add(task)
        task.add_done_callback(_running.discard)


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)


async def drain() -> None:
    """Wait for every started action (tests, shutdown)."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)
