"""`classguard serve` on the embedded defaults: a real process, real HTTP, a fresh data directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CLI = str(Path(sys.executable).with_name("classguard"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSGUARD_")}
    env["CLASSGUARD_DATA_DIR"] = str(tmp_path / "var")
    proc = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("server did not answer /healthz within 60 s")
        yield base, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_serve_fresh_data_dir_register_login_me(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, env = server
    data_dir = Path(env["CLASSGUARD_DATA_DIR"])
    assert (data_dir / "classguard.db").exists()
    assert (data_dir / "keys.json").stat().st_mode & 0o077 == 0  # the embedded key file is private
    body = {"email": "serve@example.com", "password": "a long enough secret", "display_name": "Serve",
            "date_of_birth": "1990-02-03"}
    assert httpx.post(f"{base}/api/v1/auth/register", json=body).status_code == 201
    r = httpx.post(f"{base}/api/v1/auth/login", json={"identifier": body["email"], "password": body["password"]})
    token = r.json()["token"]
    me = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == "serve@example.com"

    # an operator creates the first admin with the CLI against the same data directory
    out = subprocess.run([CLI, "users", "create", "--email", "root@example.com", "--password",
                          "operator secret 1", "--role", "admin"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "created admin root@example.com" in out.stdout
    r = httpx.post(f"{base}/api/v1/auth/login", json={"identifier": "root@example.com",
                                                      "password": "operator secret 1"})
    assert r.json()["user"]["role"] == "admin"
    dup = subprocess.run([CLI, "users", "create", "--email", "root@example.com", "--password",
                          "operator secret 1", "--role", "admin"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert dup.returncode == 1 and "already exists" in dup.stderr
