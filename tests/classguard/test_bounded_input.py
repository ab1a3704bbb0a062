"""Bounded input through the HTTP API: pagination, datetimes, names shown to others, body ceilings."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from classguard.app import create_app
from storage.body_limit import max_body
from tests.conftest import make_settings
from tests.factories import logged_in, register_body, register_verified

HUGE = 2**63


def _is_validation_error(r: httpx.Response) -> bool:
    return r.status_code == 422 and r.json()["error"] == "ValidationError" and r.json()["detail"]


@pytest.mark.parametrize("path", [
    "/api/v1/classes", "/api/v1/me/decisions", "/api/v1/users", "/api/v1/slices",
    f"/api/v1/sessions/{uuid.uuid4()}/slices", "/api/v1/moderation/slices/failed",
    "/api/v1/moderation/queue", f"/api/v1/moderation/items/{uuid.uuid4()}/events",
])
async def test_list_endpoints_bound_offset_and_limit(client: httpx.AsyncClient, path: str) -> None:
    admin = await logged_in(client, "admin")
    for query in (f"offset={HUGE}", "offset=100001", "offset=-1", f"limit={HUGE}", "limit=0", "limit=100000"):
        r = await client.get(f"{path}?{query}", headers=admin.headers)
        assert _is_validation_error(r), (query, r.status_code, r.text)
    ok = await client.get(f"{path}?offset=100000&limit=1", headers=admin.headers)
    assert ok.status_code in (200, 404), ok.text  # 404: the random session / item does not exist


async def test_student_pages_through_own_decisions_with_bounds(client: httpx.AsyncClient) -> None:
    student = await logged_in(client, "student")
    r = await client.get(f"/api/v1/me/decisions?offset={HUGE}", headers=student.headers)
    assert _is_validation_error(r)
    assert (await client.get("/api/v1/me/decisions?offset=3&limit=2", headers=student.headers)).json() == []


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
async def test_datetime_outside_the_representable_range_is_422(client: httpx.AsyncClient, when: str) -> None:
    teacher = await logged_in(client, "teacher")
    r = await client.post("/api/v1/classes", json={"title": "Algebra", "scheduled_start": when},
                          headers=teacher.headers)
    assert _is_validation_error(r) and "representable range" in r.json()["detail"]
    r = await client.post("/api/v1/classes", json={"title": "Algebra", "scheduled_start": "2030-01-01T09:00:00+08:00",
                                                   "scheduled_end": "9999-12-31T23:59:59-23:59"},
                          headers=teacher.headers)
    assert _is_validation_error(r)


async def test_schedule_times_are_stored_in_utc_and_need_a_zone(client: httpx.AsyncClient) -> None:
    teacher = await logged_in(client, "teacher")
    r = await client.post("/api/v1/classes", json={"title": "Algebra", "scheduled_start": "2030-01-01T09:00:00"},
                          headers=teacher.headers)
    assert _is_validation_error(r) and "time zone" in r.json()["detail"]
    r = await client.post("/api/v1/classes", json={"title": "Algebra", "scheduled_start": "2030-01-01T09:00:00+08:00"},
                          headers=teacher.headers)
    assert r.status_code == 201, r.text
    assert r.json()["scheduled_start"].startswith("2030-01-01T01:00:00")


@pytest.mark.parametrize("title", ["   ", "\u3000\t", "\u200b", "Al\x00gebra", "Math \u202egnp.exe",
                                   "Math \u2066x\u2069", "a\ud800"])
async def test_class_title_blank_or_with_hidden_controls_is_refused(client: httpx.AsyncClient, title: str) -> None:
    teacher = await logged_in(client, "teacher")
    body = json.dumps({"title": title}).encode()  # ASCII escapes: a lone surrogate arrives as sent
    r = await client.post("/api/v1/classes", content=body,
                          headers={**teacher.headers, "Content-Type": "application/json"})
    assert _is_validation_error(r), (title, r.text)


async def test_invisible_characters_are_stripped_from_names_shown_to_others(client: httpx.AsyncClient) -> None:
    teacher = await logged_in(client, "teacher")
    r = await client.post("/api/v1/classes", json={"title": "  Alge\u200bbra\ufeff "}, headers=teacher.headers)
    assert r.status_code == 201 and r.json()["title"] == "Algebra"
    body = register_body(display_name=" \u2060Ann\u200d Lee ")
    r = await register_verified(client, body)
    assert r.status_code == 201, r.text
    assert r.json()["display_name"] == "Ann Lee"


@pytest.mark.parametrize("name", ["  ", "\u00a0", "Ann\x00", "\u202eAnn", "Ann\u2067", "Ann\nLee"])
async def test_display_name_blank_or_with_hidden_controls_is_refused(client: httpx.AsyncClient, name: str) -> None:
    r = await client.post("/api/v1/auth/register", json=register_body(display_name=name))
    assert _is_validation_error(r), (name, r.text)
    guardian = {"guardian_name": name, "guardian_contact": "mum@example.com", "relationship": "mother",
                "consent": True}
    r = await client.post("/api/v1/auth/register", json=register_body(date_of_birth="2015-01-01", guardian=guardian))
    assert _is_validation_error(r), (name, r.text)


async def test_stored_reasons_refuse_nul_and_control_characters(client: httpx.AsyncClient) -> None:
    admin = await logged_in(client, "admin")
    r = await client.get(f"/api/v1/users/{admin.id}", params={"reason": "\x00support ticket"}, headers=admin.headers)
    assert _is_validation_error(r), r.text
    r = await client.get(f"/api/v1/users/{admin.id}", params={"reason": "support ticket\nline two"},
                         headers=admin.headers)
    assert r.status_code == 200, r.text


async def test_json_body_over_the_default_ceiling_is_413_in_the_error_shape(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/login", content=b"{" + b" " * (1024 * 1024) + b"}",
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"error": "PayloadTooLarge", "detail": "request body larger than 1048576 bytes"}


@pytest.fixture
async def small_limit_client(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[httpx.AsyncClient]:
    import shutil

    db = tmp_path / "classguard.db"
    shutil.copyfile(sqlite_template, db)
    app = create_app(make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{db}", max_json_body_bytes=2048))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            yield c


async def test_max_json_body_bytes_setting_sets_the_ceiling(small_limit_client: httpx.AsyncClient) -> None:
    fits = b'{"identifier": "a@example.com", "password": "' + b"x" * 300 + b'"}'
    r = await small_limit_client.post("/api/v1/auth/login", content=fits, headers={"Content-Type": "application/json"})
    assert r.status_code == 422  # parsed: the password is too long for the schema
    r = await small_limit_client.post("/api/v1/auth/login", content=b" " * 2049,
                                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "2048 bytes" in r.json()["detail"]


async def test_a_route_declares_its_own_body_limit(tmp_path: Path, sqlite_template: Path) -> None:
    """Uploads are not JSON: a route with ``openapi_extra=max_body(n)`` gets its own ceiling,
    enforced by the same middleware and shown in the OpenAPI document."""
    import shutil

    db = tmp_path / "classguard.db"
    shutil.copyfile(sqlite_template, db)
    app: FastAPI = create_app(make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{db}",
                                            max_json_body_bytes=1000))

    @app.put("/api/v1/test-upload/{name}", openapi_extra=max_body(5000))
    async def upload(name: str, request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            assert (await c.put("/api/v1/test-upload/a", content=b"x" * 4000)).json() == {"size": 4000}
            r = await c.put("/api/v1/test-upload/a", content=b"x" * 5001)
            assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(6):
                    yield b"x" * 1000

            r = await c.put("/api/v1/test-upload/b", content=chunks())  # no Content-Length: counted
            assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
            r = await c.post("/api/v1/auth/login", content=b" " * 1001)  # other routes keep the JSON ceiling
            assert r.status_code == 413
            doc = (await c.get("/openapi.json")).json()
            assert doc["paths"]["/api/v1/test-upload/{name}"]["put"]["x-max-body-bytes"] == 5000
