"""Shared fixtures: isolated database per test (SQLite copy of a migrated template, or a fresh
PostgreSQL database from a template for tests marked ``postgres``), the app and an HTTP client."""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from classguard.app import create_app
from classguard.settings import Settings
from storage.migrate import upgrade

# Packaged speech models are assembled once per machine into the pytest cache (``models_session``)
# and found there by every Settings and every subprocess the tests start.
MODELS_DIR = Path(os.environ.setdefault(
    "CLASSGUARD_MODELS_DIR", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "classguard-models")))

PG_URL = os.environ.get("CLASSGUARD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CLASSGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

TEST_KEYS = {
    "k1": base64.b64encode(b"1" * 32).decode(),
}
TEST_BLIND_KEY = base64.b64encode(b"b" * 32).decode()


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: everything under ``data_dir``, fixed keys, fast retries."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "encryption_keys": TEST_KEYS,
        "encryption_active_key_id": "k1",
        "blind_index_key": TEST_BLIND_KEY,
        "task_retry_base_seconds": 0.05,
        "min_password_length": 10,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session", autouse=True)
def models_session() -> Path:
    """The default speech model (``base``) assembled into ``MODELS_DIR``; a no-op (one stat) once it is."""
    from moderation.asr_models import DEFAULT_MODEL, install

    return install(DEFAULT_MODEL, MODELS_DIR)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    db = tmp_path / "classguard.db"
    shutil.copyfile(sqlite_template, db)
    return make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{db}")


def _pg_sync(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql+psycopg://")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL template database; each postgres test clones it."""
    import psycopg

    base = _pg_sync(PG_URL).replace("postgresql+psycopg://", "postgresql://")
    name = f"cg_tmpl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    tmpl_url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(_pg_sync(tmpl_url))
    yield name
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_settings(tmp_path: Path, pg_template: str) -> Iterator[Settings]:
    import psycopg

    base = _pg_sync(PG_URL).replace("postgresql+psycopg://", "postgresql://")
    name = f"cg_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield make_settings(tmp_path, database_url=PG_URL.rsplit("/", 1)[0] + f"/{name}")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def pg_client(pg_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(pg_settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside CI, skip tests whose server or browser is missing; in CI (CI=true) they always run."""
    if os.environ.get("CI"):
        return
    missing = {
        "postgres": not _reachable("127.0.0.1", 5432),
        "redis": not _reachable("127.0.0.1", 6379),
        "browser": shutil.which("chromium") is None,
    }
    for item in items:
        for marker, absent in missing.items():
            if absent and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=f"{marker} not available on this machine (runs in CI)"))
