"""Cancellation anonymises the account and detaches it from the access log; export returns my data."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from accounts.models import User
from storage.access_log.models import AccessLogEntry
from storage.access_log.service import verify_chain
from storage.runtime import get_runtime
from tests.accounts.test_auth_flow import assert_error
from tests.factories import logged_in, register_verified


async def test_export_contains_my_data(client: httpx.AsyncClient) -> None:
    me = await logged_in(client, "student", phone="+81 3-1234-5678")
    mod = await logged_in(client, "moderator")
    await client.get(f"/api/v1/users/{me.id}", params={"reason": "flag review"}, headers=mod.headers)
    r = await client.get("/api/v1/me/export", headers=me.headers)
    assert r.status_code == 200
    data = r.json()
    assert data["account"]["phone"] == "+81312345678"
    assert data["account"]["email"] == me.email
    assert data["staff_reads_of_my_data"][0]["reason"] == "flag review"


async def test_cancel_anonymises_and_keeps_log_verifiable(client: httpx.AsyncClient) -> None:
    me = await logged_in(client, "student", phone="+1 212 555 0100")
    mod = await logged_in(client, "moderator")
    await client.get(f"/api/v1/users/{me.id}", params={"reason": "checking"}, headers=mod.headers)

    assert_error(await client.post("/api/v1/me/cancel", json={"password": "not my password"}, headers=me.headers),
                 401, "Unauthorized")
    r = await client.post("/api/v1/me/cancel", json={"password": me.password}, headers=me.headers)
    assert r.status_code == 204
    # the old token is dead, the credentials are gone
    assert_error(await client.get("/api/v1/me", headers=me.headers), 401, "Unauthorized")
    r = await client.post("/api/v1/auth/login", json={"identifier": me.email, "password": me.password})
    assert_error(r, 401, "Unauthorized")

    async with get_runtime().sessionmaker() as s:
        user = await s.get(User, uuid.UUID(me.id))
        assert user is not None
        assert (user.email, user.phone_ct, user.phone_bidx, user.display_name, user.status) == (
            None, None, None, "Deleted user", "cancelled")
        entries = list((await s.execute(select(AccessLogEntry))).scalars())
        assert entries and all(e.subject_id is None for e in entries)  # the log lost the link
        assert (await verify_chain(s)).ok
    # the e-mail address is free again
    r = await register_verified(client, {
        "email": me.email, "password": "a brand new secret", "display_name": "New", "date_of_birth": "1990-01-01"})
    assert r.status_code == 201
