"""Start and stop of the moderation pipeline with the process.

Startup resumes the slices whose pipeline is unfinished (the in-process dispatcher keeps jobs in
memory only, so a restart would otherwise forget them). In the embedded mode this process is
the only worker, so stages left ``running`` are orphans and run again. In the scale-out mode
other workers may be busy, so only slices idle for ``lease_seconds`` are sent again.
A sweeper repeats that idle check every ``lease_seconds`` while the process runs, for jobs
lost without a restart (a broker hiccup, a dispatcher that gave up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from moderation import service
from storage.db import unit_of_work, utcnow
from storage.runtime import Runtime

log = logging.getLogger("classguard.moderation")
_SWEEPER = "moderation.sweeper"


async def resume(rt: Runtime, *, at_startup: bool) -> int:
    embedded = rt.settings.worker_mode == "inprocess"
    idle_since = None if (embedded and at_startup) else utcnow() - timedelta(seconds=rt.settings.lease_seconds)
    async with unit_of_work(rt.sessionmaker) as session:
        return await service.resume_unfinished(session, idle_since=idle_since,
                                               reset_running=embedded and at_startup)


async def _sweep(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(rt.settings.lease_seconds)
        try:
            n = await resume(rt, at_startup=False)
            if n:
                log.info("sent %d idle unfinished slices through the pipeline again", n)
        except Exception:  # the sweeper must outlive a database blip
            log.exception("pipeline sweep failed")


async def startup(rt: Runtime) -> None:
    n = await resume(rt, at_startup=True)
    if n:
        log.info("resuming %d unfinished slices", n)
    rt.extras[_SWEEPER] = asyncio.create_task(_sweep(rt), name="moderation-sweeper")


async def shutdown(rt: Runtime) -> None:
    task = rt.extras.pop(_SWEEPER, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
