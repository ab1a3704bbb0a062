"""Role checks on staff endpoints, and the access-log entry every staff read leaves."""

from __future__ import annotations

import httpx
import pytest

from tests.accounts.test_auth_flow import assert_error
from tests.factories import logged_in, make_user


@pytest.mark.parametrize("role", ["student", "teacher"])
async def test_non_staff_get_403(client: httpx.AsyncClient, role: str) -> None:
    user = await logged_in(client, role)
    other = await make_user("student")
    assert_error(await client.get("/api/v1/users", headers=user.headers), 403, "Forbidden")
    assert_error(await client.get(f"/api/v1/users/{other.id}", params={"reason": "curious"}, headers=user.headers),
                 403, "Forbidden")


async def test_moderator_may_read_but_not_list(client: httpx.AsyncClient) -> None:
    mod = await logged_in(client, "moderator")
    assert_error(await client.get("/api/v1/users", headers=mod.headers), 403, "Forbidden")
    student = await logged_in(client, "student", phone="+33 1 42 68 53 00")
    # a reason is required for every staff read
    assert_error(await client.get(f"/api/v1/users/{student.id}", headers=mod.headers), 422, "ValidationError")
    r = await client.get(f"/api/v1/users/{student.id}", params={"reason": "checking flagged class 42"},
                         headers=mod.headers)
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == "+33142685300"
    # the student sees who read their data and why
    log = (await client.get("/api/v1/me/access-log", headers=student.headers)).json()
    assert [(e["actor_role"], e["resource_type"], e["reason"]) for e in log] == [
        ("moderator", "user_contact", "checking flagged class 42")
    ]


async def test_admin_lists_users_without_contact_data(client: httpx.AsyncClient) -> None:
    admin = await logged_in(client, "admin")
    await make_user("teacher", phone="+49 30 901820")
    r = await client.get("/api/v1/users", params={"role": "teacher"}, headers=admin.headers)
    assert r.status_code == 200
    rows = r.json()
    assert len(rows) == 1 and rows[0]["role"] == "teacher"
    assert "phone" not in rows[0] and "email" not in rows[0]
    assert_error(await client.get("/api/v1/users/00000000-0000-0000-0000-000000000000",
                                  params={"reason": "lookup"}, headers=admin.headers), 404, "NotFound")
