"""``classguard audit verify`` and ``classguard keys generate|rotate`` against a test data directory."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from classguard.cli import app
from classguard.settings import Settings, get_settings
from storage import crypto
from storage.access_log import service
from storage.crypto import FieldCipher, register_encrypted_column
from storage.db import make_engine, make_sessionmaker
from tests.conftest import TEST_BLIND_KEY, TEST_KEYS

K2 = base64.b64encode(b"2" * 32).decode()


def cli_env(settings: Settings, keys: dict[str, str] | None = None, active: str = "k1") -> dict[str, str]:
    return {
        "CLASSGUARD_DATA_DIR": str(settings.data_dir),
        "CLASSGUARD_DATABASE_URL": settings.database_url,
        "CLASSGUARD_ENCRYPTION_KEYS": json.dumps(keys or TEST_KEYS),
        "CLASSGUARD_ENCRYPTION_ACTIVE_KEY_ID": active,
        "CLASSGUARD_BLIND_INDEX_KEY": TEST_BLIND_KEY,
    }


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run_sql(settings: Settings, *statements: str) -> None:
    async def go() -> None:
        engine = make_engine(settings.database_url)
        async with engine.begin() as conn:
            for stmt in statements:
                await conn.execute(sa.text(stmt))
        await engine.dispose()

    asyncio.run(go())


def record_entries(settings: Settings, n: int) -> None:
    async def go() -> None:
        engine = make_engine(settings.database_url)
        async with make_sessionmaker(engine)() as s, s.begin():
            for i in range(n):
                await service.record_access(
                    s, actor_id=uuid.uuid4(), actor_role="admin", action="read", resource_type="kyc_document",
                    resource_id=str(uuid.uuid4()), subject_id=uuid.uuid4(), reason=f"application review {i}",
                )
        await engine.dispose()

    asyncio.run(go())


def test_audit_verify_ok_then_tampered(runner: CliRunner, settings: Settings) -> None:
    record_entries(settings, 5)
    result = runner.invoke(app, ["audit", "verify"], env=cli_env(settings))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 5 entries")

    run_sql(settings, "DROP TRIGGER access_log_no_update",
            "UPDATE access_log SET reason = 'covering tracks' WHERE seq = 2")
    result = runner.invoke(app, ["audit", "verify"], env=cli_env(settings))
    assert result.exit_code == 1
    assert "entry 2" in result.stdout and "edited" in result.stdout


def test_keys_generate_prints_a_usable_key(runner: CliRunner) -> None:
    result = runner.invoke(app, ["keys", "generate"])
    assert result.exit_code == 0
    key = base64.b64decode(result.stdout.strip())
    assert len(key) == 32
    FieldCipher({"new": key}, "new", b"b" * 32)  # accepted as a key


def test_keys_rotate(runner: CliRunner, settings: Settings, tmp_path: Path) -> None:
    run_sql(settings, "CREATE TABLE test_cli_secrets (id VARCHAR(36) PRIMARY KEY, ct BLOB)")
    old = FieldCipher({"k1": b"1" * 32}, "k1", b"b" * 32)
    values = {str(uuid.uuid4()): f"acct-{i}" for i in range(12)}

    async def fill() -> None:
        engine = make_engine(settings.database_url)
        async with engine.begin() as conn:
            for rid, v in values.items():
                await conn.execute(sa.text("INSERT INTO test_cli_secrets VALUES (:id, :ct)"),
                                   {"id": rid, "ct": old.encrypt_str(v, "test.cli")})
        await engine.dispose()

    asyncio.run(fill())
    saved = dict(crypto.ENCRYPTED_COLUMNS)
    register_encrypted_column("test_cli_secrets", "id", "ct", "test.cli")
    try:
        env = cli_env(settings, {**TEST_KEYS, "k2": K2}, active="k2")
        result = runner.invoke(app, ["keys", "rotate", "--batch-size", "5"], env=env)
        assert result.exit_code == 0, result.output
        assert "re-wrapped 12 of 12 values to key 'k2'" in result.stdout
        assert "test_cli_secrets.ct: 12 re-wrapped" in result.stderr
        again = runner.invoke(app, ["keys", "rotate"], env=env)
        assert "re-wrapped 0 of 12" in again.stdout
    finally:
        crypto.ENCRYPTED_COLUMNS.clear()
        crypto.ENCRYPTED_COLUMNS.update(saved)

    async def check() -> None:
        only_k2 = FieldCipher({"k2": b"2" * 32}, "k2", b"b" * 32)
        engine = make_engine(settings.database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT id, ct FROM test_cli_secrets"))).all()
        await engine.dispose()
        assert {r.id: only_k2.decrypt_str(r.ct, "test.cli") for r in rows} == values

    asyncio.run(check())
