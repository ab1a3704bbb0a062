"""The admin user list is a staff read of personal data (names, roles, account states): every
account it lists gets an access-log entry, visible in that person's ``/me/access-log``."""

from __future__ import annotations

from collections import Counter

import httpx

from tests.factories import TestUser, logged_in


async def _staff_reads(client: httpx.AsyncClient, person: TestUser) -> Counter[str]:
    r = await client.get("/api/v1/me/access-log", headers=person.headers)
    assert r.status_code == 200, r.text
    return Counter(e["resource_type"] for e in r.json() if e["actor_role"] in ("moderator", "admin"))


async def test_admin_user_list_is_access_logged(client: httpx.AsyncClient) -> None:
    listed = await logged_in(client, "student")
    admin = await logged_in(client, "admin")
    r = await client.get("/api/v1/users", headers=admin.headers)
    assert r.status_code == 200 and listed.id in {u["id"] for u in r.json()}
    assert await _staff_reads(client, listed) == Counter({"user_list": 1})
    r = await client.get("/api/v1/users", params={"role": "teacher"}, headers=admin.headers)
    assert await _staff_reads(client, listed) == Counter({"user_list": 1})  # not in that list
