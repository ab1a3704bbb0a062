"""One throttle, keyed by who is attacked and who attacks (see accounts.throttle)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI

from classguard.settings import Settings
from tests.accounts.clients import app_with, client_at, sqlite_settings_like, try_login
from tests.factories import login, make_user

WRONG = "wrong password!"
PHONE_SPELLINGS = ["+1*415*555*2671", "tel:+1-415-555-2671", "(+1) 415 555 2671", "+1 415 555 2671;",
                   "+1 (415) 555-2671", "tel:+14155552671;phone-context=example.com"]


async def test_every_spelling_of_a_phone_shares_one_counter(app: FastAPI) -> None:
    user = await make_user(phone="+14155552671")
    async with client_at(app, "198.51.100.1") as c:
        for spelling in PHONE_SPELLINGS[:5]:
            assert (await try_login(c, spelling, WRONG)).status_code == 401
        r = await try_login(c, PHONE_SPELLINGS[5], user.password)  # right password, sixth spelling
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "TooManyRequests" and int(r.headers["retry-after"]) >= 1


async def test_spellings_of_an_unknown_phone_share_one_counter(app: FastAPI) -> None:
    unknown = [s.replace("2671", "2672") for s in PHONE_SPELLINGS]
    async with client_at(app, "198.51.100.2") as c:
        assert [(await try_login(c, s, WRONG)).status_code for s in unknown] == [401] * 5 + [429]


async def _thirty_at_once(client: httpx.AsyncClient, identifier: str) -> Counter[int]:
    replies = await asyncio.gather(*[try_login(client, identifier, WRONG) for _ in range(30)])
    return Counter(r.status_code for r in replies)


async def test_thirty_concurrent_wrong_passwords_evaluate_at_most_the_limit(app: FastAPI,
                                                                            settings: Settings) -> None:
    user = await make_user()
    async with client_at(app, "198.51.100.3") as c:
        counts = await _thirty_at_once(c, user.email)
        # a 401 is an evaluated password; everything past the limit is refused before argon2 runs
        assert set(counts) <= {401, 429} and 1 <= counts[401] <= settings.login_max_failures, counts
        assert counts[401] + counts[429] == 30


@pytest.mark.postgres
async def test_thirty_concurrent_wrong_passwords_on_postgres(pg_settings: Settings) -> None:
    async with app_with(pg_settings) as app, client_at(app, "198.51.100.4") as c:
        user = await make_user()
        counts = await _thirty_at_once(c, user.email)
        assert set(counts) <= {401, 429} and 1 <= counts[401] <= pg_settings.login_max_failures, counts
        # and the phone spellings, on PostgreSQL too
        phone_user = await make_user(phone="+14155552671")
        for s in PHONE_SPELLINGS[:5]:
            assert (await try_login(c, s, WRONG)).status_code == 401
        assert (await try_login(c, PHONE_SPELLINGS[5], phone_user.password)).status_code == 429


async def test_password_spraying_from_one_address_is_throttled(settings: Settings) -> None:
    spray = sqlite_settings_like(settings, login_address_max_failures=6)
    async with app_with(spray) as app, client_at(app, "203.0.113.50") as sprayer, \
            client_at(app, "192.0.2.60") as elsewhere:
        users = [await make_user() for _ in range(8)]
        # one guess per account: no account reaches its own limit, the address does
        assert [(await try_login(sprayer, u.email, "Summer2024!!")).status_code for u in users[:7]] == \
            [401] * 6 + [429]
        assert (await try_login(sprayer, users[7].email, users[7].password)).status_code == 429
        assert (await try_login(elsewhere, users[7].email, users[7].password)).status_code == 200


async def test_a_stranger_does_not_lock_the_owner_out(app: FastAPI) -> None:
    owner = await make_user()
    async with client_at(app, "198.51.100.66") as stranger, client_at(app, "192.0.2.10") as home:
        codes = [(await try_login(stranger, owner.email, WRONG)).status_code for _ in range(8)]
        assert codes == [401] * 5 + [429] * 3
        # the right password from the stranger's address waits out the back-off too
        assert (await try_login(stranger, owner.email, owner.password)).status_code == 429
        r = await try_login(home, owner.email, owner.password)
        assert r.status_code == 200, r.text


async def test_account_ceiling_spares_the_owners_known_address(settings: Settings) -> None:
    ceiling = sqlite_settings_like(settings, login_account_max_failures=4)
    async with app_with(ceiling) as app, client_at(app, "192.0.2.20") as home:
        owner = await make_user()
        await login(home, owner)  # home is now a known address of the owner
        botnet = [client_at(app, f"203.0.113.{100 + i}") for i in range(6)]
        codes = [(await try_login(b, owner.email, WRONG)).status_code for b in botnet[:5]]
        assert codes == [401] * 4 + [429]  # the account ceiling, across addresses
        assert (await try_login(botnet[5], owner.email, owner.password)).status_code == 429
        assert (await try_login(home, owner.email, owner.password)).status_code == 200
        for b in botnet:
            await b.aclose()


async def test_backoff_doubles_per_pair(settings: Settings) -> None:
    fast = sqlite_settings_like(settings, login_backoff_base_seconds=1.0)
    async with app_with(fast) as app, client_at(app, "198.51.100.77") as c:
        user = await make_user()
        assert [(await try_login(c, user.email, WRONG)).status_code for _ in range(5)] == [401] * 5
        first = await try_login(c, user.email, WRONG)
        assert first.status_code == 429 and first.headers["retry-after"] == "1"
        await asyncio.sleep(1.2)
        assert (await try_login(c, user.email, WRONG)).status_code == 401  # one more try after the wait
        second = await try_login(c, user.email, WRONG)
        assert second.status_code == 429 and second.headers["retry-after"] == "2"
