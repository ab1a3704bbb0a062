"""The session cookie: ``Secure`` outside the embedded mode or over https, and cookie-authenticated
unsafe requests only from this server's own origin (or ``allowed_origins``); bearer tokens are
not affected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from classguard.app import create_app
from classguard.settings import Settings
from tests.accounts.test_auth_flow import assert_error
from tests.factories import login, make_user

EVIL = "http://evil.example"


@asynccontextmanager
async def client_with(settings: Settings, base_url: str = "http://testserver",
                      **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update=overrides))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as c:
            yield c


async def _cookie_login(client: httpx.AsyncClient, role: str = "teacher") -> str:
    """Log in so that the client holds the session cookie; returns the bearer token too."""
    user = await login(client, await make_user(role))
    assert "cg_session" in client.cookies
    return user.token


def _set_cookie(r: httpx.Response) -> str:
    [cookie] = [v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("cg_session=")]
    return cookie.lower()


async def test_cookie_is_not_secure_in_the_embedded_mode_over_http(client: httpx.AsyncClient) -> None:
    user = await make_user()
    r = await client.post("/api/v1/auth/login", json={"identifier": user.email, "password": user.password})
    cookie = _set_cookie(r)
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie.replace("samesite", "")


async def test_cookie_secure_setting_and_https_set_secure(settings: Settings) -> None:
    async with client_with(settings, cookie_secure=True) as c:
        user = await make_user()
        r = await c.post("/api/v1/auth/login", json={"identifier": user.email, "password": user.password})
        assert "; secure" in _set_cookie(r)
        r = await c.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {r.json()['token']}"})
        assert r.status_code == 204 and "; secure" in _set_cookie(r)  # the deletion matches the cookie
    async with client_with(settings, base_url="https://testserver") as c:  # embedded, but behind https
        user = await make_user()
        r = await c.post("/api/v1/auth/login", json={"identifier": user.email, "password": user.password})
        assert "; secure" in _set_cookie(r)


def test_cookie_secure_defaults_on_outside_the_embedded_mode(settings: Settings) -> None:
    assert settings.is_sqlite and not settings.session_cookie_secure
    pg = Settings(data_dir=settings.data_dir, database_url="postgresql+asyncpg://db.internal/classguard")
    assert pg.session_cookie_secure
    forced_off = Settings(data_dir=settings.data_dir, database_url=pg.database_url, cookie_secure=False)
    assert not forced_off.session_cookie_secure


async def test_cookie_authenticated_post_from_another_origin_is_refused(client: httpx.AsyncClient) -> None:
    await _cookie_login(client)
    r = await client.post("/api/v1/classes", json={"title": "Stolen"}, headers={"Origin": EVIL})
    assert_error(r, 403, "Forbidden")
    assert "origin" in r.json()["detail"].lower()
    assert_error(await client.post("/api/v1/classes", json={"title": "No origin"}), 403, "Forbidden")
    assert_error(await client.post("/api/v1/classes", json={"title": "Sandboxed"}, headers={"Origin": "null"}),
                 403, "Forbidden")
    # nothing was created by the refused requests; reads with the cookie work from anywhere
    r = await client.get("/api/v1/classes", headers={"Origin": EVIL})
    assert r.status_code == 200 and r.json() == []
    # the page's own origin may
    r = await client.post("/api/v1/classes", json={"title": "Mine"}, headers={"Origin": "http://testserver"})
    assert r.status_code == 201, r.text


async def test_cookie_logout_from_another_origin_keeps_the_session(client: httpx.AsyncClient) -> None:
    token = await _cookie_login(client, "student")
    assert_error(await client.post("/api/v1/auth/logout", headers={"Origin": EVIL}), 403, "Forbidden")
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


async def test_bearer_requests_are_not_affected_by_origin(client: httpx.AsyncClient) -> None:
    token = await _cookie_login(client)
    r = await client.post("/api/v1/classes", json={"title": "Scripted"},
                          headers={"Authorization": f"Bearer {token}", "Origin": EVIL})
    assert r.status_code == 201, r.text
    client.cookies.clear()
    r = await client.post("/api/v1/classes", json={"title": "Scripted 2"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text


async def test_allowed_origins_setting(settings: Settings) -> None:
    async with client_with(settings, allowed_origins=["https://app.example"]) as c:
        await _cookie_login(c)
        r = await c.post("/api/v1/classes", json={"title": "From the app"}, headers={"Origin": "https://app.example"})
        assert r.status_code == 201, r.text
        r = await c.post("/api/v1/classes", json={"title": "x"}, headers={"Origin": "https://other.example"})
        assert_error(r, 403, "Forbidden")
