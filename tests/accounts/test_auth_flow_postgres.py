"""The register → login → me flow against the real PostgreSQL server."""

from __future__ import annotations

import httpx
import pytest

from accounts.registration import accepted_body
from tests.factories import register_body, register_verified

pytestmark = pytest.mark.postgres


async def test_flow_on_postgres(pg_client: httpx.AsyncClient) -> None:
    body = register_body(email=None, phone="+1 415 555 2671")
    r = await register_verified(pg_client, body)
    assert r.status_code == 201, r.text
    r = await pg_client.post("/api/v1/auth/login", json={"identifier": "tel:+1-415-555-2671",
                                                         "password": body["password"]})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    me = await pg_client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["phone"] == "+14155552671"
    dup = await pg_client.post("/api/v1/auth/register", json=register_body(email=None, phone="+14155552671"))
    assert dup.status_code == 202
    assert dup.json() == accepted_body()
    assert (await pg_client.get("/healthz")).json() == {"status": "ok"}

