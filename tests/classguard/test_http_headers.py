"""Headers on every response (nosniff, Referrer-Policy), no-store on the API, the console's CSP,
and /docs served from the package (no CDN) with /openapi.json beside it."""

from __future__ import annotations

import re

import httpx

from classguard.app import create_app
from classguard.settings import Settings
from tests.factories import logged_in


def _common(r: httpx.Response) -> None:
    assert r.headers["x-content-type-options"] == "nosniff", r.url
    assert r.headers["referrer-policy"] == "no-referrer", r.url


async def test_every_response_has_nosniff_and_referrer_policy(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/class", "/moderation", "/moderation/static/console.js", "/openapi.json", "/docs",
                 "/no-such-page", "/api/v1/me", "/api/v1/no-such-thing"):
        _common(await client.get(path))
    _common(await client.post("/api/v1/auth/register", content=b"{bad", headers={"content-type": "application/json"}))


async def test_api_responses_with_personal_data_are_not_stored(client: httpx.AsyncClient) -> None:
    user = await logged_in(client)
    client.cookies.clear()
    for r in (await client.get("/api/v1/me", headers=user.headers),
              await client.get("/api/v1/me/export", headers=user.headers),
              await client.get("/api/v1/classes", headers=user.headers),
              await client.get("/api/v1/me/access-log", headers=user.headers)):
        assert r.status_code == 200, r.text
        assert "no-store" in r.headers["cache-control"], r.url
    # the login answer carries the token though its request was not authenticated
    r = await client.post("/api/v1/auth/login", json={"identifier": user.email, "password": user.password})
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    # errors too (they name accounts and states)
    assert "no-store" in (await client.get("/api/v1/me")).headers["cache-control"]


async def test_console_page_has_a_csp_like_the_class_page(client: httpx.AsyncClient) -> None:
    csp = (await client.get("/moderation")).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    html = (await client.get("/moderation")).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script would be blocked"
    assert " style=" not in html and "<style" not in html and not re.search(r"\son[a-z]+=", html)


async def test_docs_are_served_from_the_package_offline(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from another host
    assert "cdn" not in r.text.lower()
    for u in urls:
        asset = await client.get(u)
        assert asset.status_code == 200 and len(asset.content) > 100, u
    js = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith("text/javascript") and b"SwaggerUIBundle" in js.content
    assert (await client.get("/docs/assets/..%2Fsettings.py")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404  # ReDoc would need a CDN
    assert "/api/v1/auth/login" in (await client.get("/openapi.json")).json()["paths"]


async def test_docs_can_be_switched_off(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"docs_enabled": False}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            assert (await c.get("/docs")).status_code == 404
            assert (await c.get("/docs/assets/swagger-ui-bundle.js")).status_code == 404
            assert (await c.get("/openapi.json")).status_code == 200
