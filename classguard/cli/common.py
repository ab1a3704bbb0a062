"""Helpers for CLI commands that need the runtime (database, cipher, media) without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from classguard.bootstrap import start_runtime, stop_runtime
from classguard.settings import get_settings
from storage.migrate import upgrade
from storage.runtime import Runtime

T = TypeVar("T")


def run_with_runtime(fn: Callable[[Runtime], Awaitable[T]], *, migrate: bool = True) -> T:
    """Start the runtime (no background workers), run ``fn`` and tear down."""
    settings = get_settings()

    async def _go() -> T:
        if migrate:
            await asyncio.to_thread(upgrade, settings.sync_database_url)
        rt = await start_runtime(settings, start_workers=False, lifecycle=False)
        try:
            return await fn(rt)
        finally:
            await stop_runtime()

    return asyncio.run(_go())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for a server this command starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
