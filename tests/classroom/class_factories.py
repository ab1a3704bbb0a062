"""Factories for the classroom tests: a class with a teacher and enrolled students, through the API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.factories import TestUser, logged_in

_seq = itertools.count(1)


@dataclass
class ClassSetup:
    id: str
    teacher: TestUser
    students: list[TestUser] = field(default_factory=list)

    @property
    def student(self) -> TestUser:
        return self.students[0]


async def make_class(client: httpx.AsyncClient, teacher: TestUser | None = None, students: int = 1,
                     **body: Any) -> ClassSetup:
    """A class created by ``teacher`` (a new one by default) with ``students`` enrolled students."""
    teacher = teacher or await logged_in(client, "teacher")
    payload = {"title": f"Class {next(_seq)}", "description": "fractions",
               "scheduled_start": "2030-01-07T09:00:00Z", "scheduled_end": "2030-01-07T10:00:00Z"}
    payload.update(body)
    r = await client.post("/api/v1/classes", json=payload, headers=teacher.headers)
    assert r.status_code == 201, r.text
    setup = ClassSetup(id=r.json()["id"], teacher=teacher)
    for _ in range(students):
        student = await logged_in(client, "student")
        r = await client.post(f"/api/v1/classes/{setup.id}/enroll", headers=student.headers)
        assert r.status_code == 201, r.text
        setup.students.append(student)
    return setup


async def join(client: httpx.AsyncClient, class_id: str, user: TestUser) -> dict[str, Any]:
    """Join the class's live session over HTTP (starts it if needed); returns the JoinOut body."""
    r = await client.post(f"/api/v1/classes/{class_id}/join", headers=user.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@dataclass
class Attendee:
    """A bot connected to a live session through the same path as the signaling socket."""

    bot: Any
    user: TestUser
    task: Any

    async def leave(self) -> None:
        import asyncio

        await self.bot.leave()
        await asyncio.gather(self.task, return_exceptions=True)


async def attend(session_id: str, user: TestUser, name: str = "bot") -> Attendee:
    """Authorise ``user`` for the session, record the stay and run a ``Bot`` over an in-memory
    channel on the app's own relay (the WebSocket route does the same over a socket)."""
    import asyncio
    import uuid

    from accounts import service as accounts_service
    from classroom import service
    from classroom.bot import Bot
    from classroom.endpoints import attend as run_attendance
    from classroom.signaling import channel_pair
    from storage.db import unit_of_work
    from storage.runtime import get_runtime

    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as s:
        _, u = await accounts_service.authenticate(s, user.token)
        ls, _, role = await service.authorize_join(s, uuid.UUID(session_id), u)
        stay = await service.participant_joined(s, ls.id, u.id, role)
    server_end, client_end = channel_pair()
    task = asyncio.ensure_future(run_attendance(rt, ls.id, u.id, name, role, stay.id, server_end))
    bot = await Bot(client_end, name=name).start()
    return Attendee(bot, user, task)
