"""The process-wide runtime: engine, sessions, media store, field cipher and job dispatcher.

Built once by the composition root (app start, CLI command, Celery worker) and read by
request dependencies and task functions, which take ids and open their own unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from classguard.settings import Settings
    from storage.crypto import FieldCipher
    from storage.jobs import Dispatcher
    from storage.media import MediaStore


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    media: MediaStore
    cipher: FieldCipher
    dispatcher: Dispatcher
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. the live relay, set by classroom


_current: Runtime | None = None


def set_runtime(rt: Runtime | None) -> None:
    global _current
    _current = rt


def get_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("classguard runtime is not started")
    return _current
