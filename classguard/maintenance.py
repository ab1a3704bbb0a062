"""Periodic housekeeping of a serving process: the media retention sweep (privacy promise 4)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from storage import retention
from storage.db import utcnow
from storage.runtime import Runtime

log = logging.getLogger("classguard.retention")


async def sweep_once(rt: Runtime) -> retention.SweepReport:
    """Delete raw media older than the retention period unless a hold keeps it."""
    cutoff = utcnow() - timedelta(days=rt.settings.media_retention_days)
    report = await retention.sweep(rt.sessionmaker, rt.media, cutoff)
    if report.deleted or report.held:
        log.info("retention sweep: deleted %d media objects, kept %d on hold", report.deleted, report.held)
    return report


async def retention_loop(rt: Runtime) -> None:
    interval = rt.settings.retention_sweep_interval_seconds
    while True:
        try:
            await sweep_once(rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed; will try again in %.0f s", interval)
        await asyncio.sleep(interval)
