"""Request dependencies of the shared kit: the per-request DB session and the client address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import unit_of_work
from storage.runtime import Runtime, get_runtime


async def _db_session() -> AsyncIterator[AsyncSession]:
    # Committed when the route function returns and *before* the response is sent
    # (scope="function"), so a 2xx always means the data is stored.
    async with unit_of_work(get_runtime().sessionmaker) as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_db_session, scope="function")]


def _runtime() -> Runtime:
    return get_runtime()


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientIP = Annotated[str, Depends(client_ip)]
