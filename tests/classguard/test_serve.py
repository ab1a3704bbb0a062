"""`classguard serve` on the embedded defaults: a real process, real HTTP, a fresh data directory."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.classroom.live_server import CLI, LiveServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # no settings but the data directory (and no SMTP: mail stays in the outbox, the embedded default)
    srv = LiveServer(tmp_path / "var", {"CLASSGUARD_SMTP_HOST": ""}).start()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_serve_fresh_data_dir_register_login_me(server: LiveServer) -> None:
    base, env = server.base, server.env
    assert (server.data_dir / "classguard.db").exists()
    assert (server.data_dir / "keys.json").stat().st_mode & 0o077 == 0  # the embedded key file is private
    body = {"email": "serve@example.com", "password": "a long enough secret", "display_name": "Serve",
            "date_of_birth": "1990-02-03"}
    assert httpx.post(f"{base}/api/v1/auth/register", json=body).status_code == 202
    # the operator reads the code from the outbox (no SMTP configured) and passes it on
    listed = subprocess.run([CLI, "outbox", "list", "--to", "serve@example.com", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    mail = json.loads(listed.stdout.splitlines()[0])
    assert mail["channel"] == "email" and mail["status"] == "held"
    code = re.search(r"\b(\d{6})\b", mail["body"])
    assert code is not None, mail
    r = httpx.post(f"{base}/api/v1/auth/register/verify", json={"identifier": body["email"], "code": code.group(1)})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{base}/api/v1/auth/login", json={"identifier": body["email"], "password": body["password"]})
    token = r.json()["token"]
    me = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == "serve@example.com"

    # an operator creates the first admin with the CLI against the same data directory
    create = [CLI, "users", "create", "--email", "root@example.com", "--password", "operator secret 1",
              "--role", "admin"]
    out = subprocess.run(create, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "created admin root@example.com" in out.stdout
    r = httpx.post(f"{base}/api/v1/auth/login", json={"identifier": "root@example.com",
                                                      "password": "operator secret 1"})
    assert r.json()["user"]["role"] == "admin"
    dup = subprocess.run(create, env=env, capture_output=True, text=True, timeout=60)
    assert dup.returncode == 1 and "already exists" in dup.stderr
