"""No pre-auth denial of service: wrong logins never hold two connections or the event loop,
and a request that cannot get a connection answers 503 with the error shape at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from classguard.settings import Settings
from storage.runtime import get_runtime
from tests.accounts.clients import app_with, client_at, sqlite_settings_like, try_login
from tests.factories import logged_in


async def test_concurrent_wrong_logins_do_not_starve_me(app: FastAPI, client: httpx.AsyncClient) -> None:
    bystander = await logged_in(client)
    attacker = client_at(app, "203.0.113.9")

    async def poll_me() -> list[httpx.Response]:
        out = []
        for _ in range(15):
            out.append(await client.get("/api/v1/me", headers=bystander.headers))
            await asyncio.sleep(0.02)
        return out

    async with attacker:
        wrong = asyncio.gather(*[try_login(attacker, f"nobody{i}@example.com", "wrong password!")
                                 for i in range(20)])
        attacks, polls = await asyncio.gather(wrong, poll_me())
    assert [r.status_code for r in polls] == [200] * len(polls), [r.text for r in polls if r.status_code != 200]
    statuses = {r.status_code for r in attacks}
    assert statuses <= {401, 429}, [r.text for r in attacks if r.status_code >= 500][:3]
    for r in attacks:
        assert set(r.json()) == {"error", "detail"}


async def test_no_free_connection_is_a_quick_503_with_the_error_shape(settings: Settings) -> None:
    tight = sqlite_settings_like(settings, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.3)
    async with app_with(tight) as app, client_at(app, "192.0.2.1") as client:
        user = await logged_in(client)
        held = await get_runtime().engine.connect()  # the pool's only connection
        try:
            r = await client.get("/api/v1/me", headers=user.headers)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "Unavailable" and set(r.json()) == {"error", "detail"}
            assert r.headers["retry-after"]
            r = await try_login(client, user.email, user.password)
            assert r.status_code == 503, r.text
        finally:
            await held.close()
        # the connection is back: everything works again
        assert (await client.get("/api/v1/me", headers=user.headers)).status_code == 200


@pytest.mark.postgres
async def test_concurrent_wrong_logins_on_postgres(pg_settings: Settings) -> None:
    tight = pg_settings.model_copy(update={"db_pool_size": 4, "db_max_overflow": 0})
    async with app_with(tight) as app, client_at(app, "192.0.2.2") as owner, client_at(app, "203.0.113.8") as bad:
        user = await logged_in(owner)
        attacks = await asyncio.gather(*[try_login(bad, f"x{i}@example.com", "wrong password!") for i in range(20)],
                                       *[owner.get("/api/v1/me", headers=user.headers) for _ in range(10)])
        assert all(r.status_code < 500 for r in attacks), [r.text for r in attacks if r.status_code >= 500][:3]
        assert all(r.status_code == 200 for r in attacks[20:])
