"""HTTP clients that reach the app from a chosen client address (the throttle keys on it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from classguard.app import create_app
from classguard.settings import Settings
from tests.conftest import make_settings


def client_at(app: FastAPI, ip: str) -> httpx.AsyncClient:
    """A client whose requests come from ``ip`` (the ASGI scope's client address)."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@asynccontextmanager
async def app_with(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def sqlite_settings_like(base: Settings, **overrides: Any) -> Settings:
    """The test's SQLite settings with some values changed."""
    return make_settings(Path(base.data_dir), database_url=base.database_url, **overrides)


async def try_login(client: httpx.AsyncClient, identifier: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"identifier": identifier, "password": password})
