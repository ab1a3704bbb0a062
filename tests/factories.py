"""Factories with defaults: make users and log them in through the real HTTP API."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from accounts import service
from accounts.models import Role
from accounts.outbox import ReadMessage, read_messages
from storage.db import unit_of_work
from storage.runtime import get_runtime

_seq = itertools.count(1)
DEFAULT_PASSWORD = "correct horse battery"


@dataclass
class TestUser:
    __test__ = False  # not a test class, despite the name

    id: str
    email: str
    password: str
    role: str
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def register_body(**overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "email": f"user{n}@example.com",
        "password": DEFAULT_PASSWORD,
        "display_name": f"User {n}",
        "date_of_birth": "1995-05-17",
        "role": "student",
    }
    body.update(overrides)
    return body


async def make_user(role: str | Role = Role.student, **overrides: Any) -> TestUser:
    """Create a user of any role directly through the service (staff cannot self-register)."""
    body = register_body(role=Role(role), **overrides)
    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as session:
        user = await service.register(session, rt.settings, service.NewUser(
            email=body["email"], phone=body.get("phone"), password=body["password"],
            display_name=body["display_name"], date_of_birth=date.fromisoformat(body["date_of_birth"]),
            role=Role(role), region=body.get("region"),
        ))
    return TestUser(id=str(user.id), email=body["email"], password=body["password"], role=Role(role).value)


async def login(client: httpx.AsyncClient, user: TestUser) -> TestUser:
    r = await client.post("/api/v1/auth/login", json={"identifier": user.email, "password": user.password})
    assert r.status_code == 200, r.text
    user.token = r.json()["token"]
    return user


async def logged_in(client: httpx.AsyncClient, role: str | Role = Role.student, **overrides: Any) -> TestUser:
    return await login(client, await make_user(role, **overrides))


CODE_RE = re.compile(r"\b(\d{6})\b")


async def messages_to(identifier: str) -> list[ReadMessage]:
    """Messages in the outbox for an e-mail address or phone number (any spelling), newest first."""
    _, canonical = service.canonical_identifier(identifier)
    async with get_runtime().sessionmaker() as session:
        return await read_messages(session, to=canonical, limit=50)


async def code_sent_to(identifier: str) -> str:
    """The one-time code of the newest message to ``identifier`` (the embedded outbox keeps it)."""
    for msg in await messages_to(identifier):
        found = CODE_RE.search(msg.body or "")
        if found:
            return found.group(1)
    raise AssertionError(f"no code was sent to {identifier}")


async def register_verified(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """Self-register through HTTP, read the code from the outbox, confirm it; the verify answer."""
    r = await client.post("/api/v1/auth/register", json=body)
    assert r.status_code == 202, r.text
    identifier = body.get("email") or body["phone"]
    return await client.post("/api/v1/auth/register/verify",
                             json={"identifier": identifier, "code": await code_sent_to(identifier)})
