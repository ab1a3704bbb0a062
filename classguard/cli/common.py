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


async def code_from_outbox(identifier: str, timeout: float = 30.0) -> str:
    """The newest one-time code sent to ``identifier``, read from this runtime's outbox.

    For the tools that self-register users on a server whose database they share (simulate, the
    local load test) in the embedded mode, where mail stays in the outbox.
    """
    import re

    from accounts.outbox import read_messages
    from accounts.service import canonical_identifier
    from storage.runtime import get_runtime

    _, canonical = canonical_identifier(identifier)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with get_runtime().sessionmaker() as session:
            for msg in await read_messages(session, status=None, to=canonical, limit=5):
                found = re.search(r"\b(\d{6})\b", msg.body or "")
                if found:
                    return found.group(1)
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"no code for {identifier} in the outbox (is SMTP configured? then read the mail)")
        await asyncio.sleep(0.1)
