"""A real ``classguard serve`` process on a temp data dir, for the browser and crash tests, with
helpers to make users and a class through its HTTP API (and the CLI for staff)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from classguard.cli.common import free_port
from tests.conftest import MODELS_DIR
from tests.mail_sink import MailSink, code_in
from tests.processes import stop_process

CLI = str(Path(sys.executable).with_name("classguard"))
PASSWORD = "correct horse battery"



@dataclass
class ServerUser:
    id: str
    email: str
    token: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class LiveServer:
    """``classguard serve`` in a subprocess; logs go to ``<data_dir>/../server-N.log``."""

    data_dir: Path
    settings_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    mail: MailSink | None = None  # where the server's mail goes (codes for registration)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSGUARD_")}
        env["CLASSGUARD_DATA_DIR"] = str(self.data_dir)
        if self.mail is not None:
            env.update(self.mail.env())
        env["CLASSGUARD_MODELS_DIR"] = str(MODELS_DIR)  # assembled once for the test session
        env.update(self.settings_env)
        return env

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"server-{self.starts}.log"

    def start(self, timeout: float = 60.0) -> LiveServer:
        self.port = self.port or free_port()
        self.starts += 1
        if self.mail is None and "CLASSGUARD_SMTP_HOST" not in self.settings_env:
            self.mail = MailSink().start()
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([CLI, "serve", "--port", str(self.port)], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited:\n{self.log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server did not answer /healthz within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self.mail is not None:
            self.mail.stop()
            self.mail = None

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.data_dir.parent.glob("server-*.log")))

    # --- API helpers --------------------------------------------------------------------------

    def register(self, email: str, role: str = "student", name: str | None = None) -> ServerUser:
        body = {"email": email, "password": PASSWORD, "display_name": name or email.split("@")[0],
                "date_of_birth": "1990-02-03", "role": role}
        r = httpx.post(f"{self.base}/api/v1/auth/register", json=body, timeout=30)
        assert r.status_code == 202, r.text
        self.verify(email)
        return self.login(email)

    def verify(self, email: str) -> None:
        """Confirm a registration with the code the server mailed (to this server's mail sink)."""
        assert self.mail is not None, "this server's mail does not come to the test"
        code = code_in(self.mail.wait_for(email)[-1])
        r = httpx.post(f"{self.base}/api/v1/auth/register/verify", json={"identifier": email, "code": code},
                       timeout=30)
        assert r.status_code == 201, r.text

    def login(self, email: str) -> ServerUser:
        r = httpx.post(f"{self.base}/api/v1/auth/login", json={"identifier": email, "password": PASSWORD},
                       timeout=30)
        assert r.status_code == 200, r.text
        user = r.json()["user"]
        return ServerUser(id=user["id"], email=email, token=r.json()["token"], role=user["role"])

    def create_staff(self, email: str, role: str = "moderator") -> ServerUser:
        out = subprocess.run([CLI, "users", "create", "--email", email, "--password", PASSWORD, "--role", role],
                             env=self.env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return self.login(email)

    def make_class(self, teacher: ServerUser, students: list[ServerUser], title: str = "Fractions") -> str:
        r = httpx.post(f"{self.base}/api/v1/classes", json={"title": title}, headers=teacher.headers, timeout=30)
        assert r.status_code == 201, r.text
        class_id: str = r.json()["id"]
        for s in students:
            r = httpx.post(f"{self.base}/api/v1/classes/{class_id}/enroll", headers=s.headers, timeout=30)
            assert r.status_code == 201, r.text
        return class_id

    def get(self, path: str, user: ServerUser, **kwargs: Any) -> Any:
        r = httpx.get(f"{self.base}{path}", headers=user.headers, timeout=30, **kwargs)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, user: ServerUser, json: Any = None) -> Any:
        r = httpx.post(f"{self.base}{path}", headers=user.headers, json=json, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def ws_url(self, session_id: str, user: ServerUser) -> str:
        """This server's signaling URL with a fresh join ticket (``POST …/join``; the login token
        itself is never put in a URL)."""
        from urllib.parse import urlsplit

        signal_url = self.post(f"/api/v1/sessions/{session_id}/join", user)["signal_url"]
        return f"ws://127.0.0.1:{self.port}/api/v1/sessions/{session_id}/signal?{urlsplit(signal_url).query}"


def scale_out_nodes(tmp_path: Path, database_url: str, names: tuple[str, ...] = ("node-a", "node-b")
                    ) -> list[LiveServer]:
    """Relay/API nodes of the scale-out mode on one PostgreSQL and one Redis, each with its own
    data directory, node id and public URL (not started)."""
    import json

    from tests.conftest import REDIS_URL, TEST_BLIND_KEY, TEST_KEYS

    nodes = []
    for name in names:
        port = free_port()
        (tmp_path / name / "var").mkdir(parents=True)
        nodes.append(LiveServer(tmp_path / name / "var", port=port, settings_env={
            "CLASSGUARD_DATABASE_URL": database_url,
            "CLASSGUARD_ENCRYPTION_KEYS": json.dumps(TEST_KEYS), "CLASSGUARD_ENCRYPTION_ACTIVE_KEY_ID": "k1",
            "CLASSGUARD_BLIND_INDEX_KEY": TEST_BLIND_KEY, "CLASSGUARD_REDIS_URL": REDIS_URL,
            "CLASSGUARD_RELAY_PLACEMENT": "redis", "CLASSGUARD_RELAY_NODE_ID": name,
            "CLASSGUARD_RELAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }))
    return nodes
