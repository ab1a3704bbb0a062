"""Register → login → me → logout over HTTP, with the error shape for every failure."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select

from accounts.models import User
from storage.runtime import get_runtime
from tests.factories import messages_to, register_body, register_verified


def assert_error(r: httpx.Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == error
    assert isinstance(body["detail"], str) and body["detail"]


async def test_register_login_me_logout(client: httpx.AsyncClient) -> None:
    body = register_body(email="Ada.Lovelace@Example.com")
    r = await register_verified(client, body)
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "ada.lovelace@example.com"
    assert "password" not in r.text

    r = await client.post("/api/v1/auth/login", json={"identifier": "ada.lovelace@example.com",
                                                     "password": body["password"]})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["display_name"] == body["display_name"]
    assert me.json()["role"] == "student"

    r = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    assert_error(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}), 401, "Unauthorized")


async def test_phone_registration_stores_e164_encrypted(client: httpx.AsyncClient) -> None:
    body = register_body(email=None, phone="+44 20 7946 0958")
    r = await register_verified(client, body)
    assert r.status_code == 201, r.text
    assert r.json()["phone"] == "+442079460958"
    r = await client.post("/api/v1/auth/login", json={"identifier": "+44 (0)20 7946 0958".replace("(0)", ""),
                                                     "password": body["password"]})
    assert r.status_code == 200, r.text
    async with get_runtime().sessionmaker() as s:
        user = (await s.execute(select(User))).scalar_one()
    assert user.phone_ct is not None and b"442079460958" not in user.phone_ct
    assert user.phone_bidx and "442079460958" not in user.phone_bidx
    # the same number in another notation is a duplicate (blind index over the E.164 form): the
    # same answer as a new number, and the owner is told by SMS (the outbox) instead of a code
    dup = register_body(email=None, phone="+442079460958")
    r = await client.post("/api/v1/auth/register", json=dup)
    assert r.status_code == 202, r.text
    notice = (await messages_to("+442079460958"))[0]
    assert notice.channel == "sms" and "already has an account" in (notice.body or "")


async def test_cookie_session_works_for_pages(client: httpx.AsyncClient) -> None:
    body = register_body()
    await register_verified(client, body)
    r = await client.post("/api/v1/auth/login", json={"identifier": body["email"], "password": body["password"]})
    assert "cg_session" in r.cookies
    me = await client.get("/api/v1/me")  # the client keeps the cookie
    assert me.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"email": "not-an-email"}, "ValidationError"),
        ({"email": None, "phone": "+1 555"}, "ValidationError"),
        ({"email": None, "phone": None}, "ValidationError"),
        ({"password": "short"}, "ValidationError"),
        ({"password": "aaaaaaaaaaaaaa"}, "ValidationError"),
        ({"password": "password123"}, "ValidationError"),
        ({"date_of_birth": (date.today() + timedelta(days=3)).isoformat()}, "ValidationError"),
        ({"date_of_birth": "not a date"}, "ValidationError"),
        ({"role": "admin"}, "ValidationError"),
    ],
)
async def test_register_rejects_bad_input(client: httpx.AsyncClient, overrides: dict, error: str) -> None:
    # role=admin: staff accounts are made by operators, never by self-registration
    assert_error(await client.post("/api/v1/auth/register", json=register_body(**overrides)), 422, error)


async def test_duplicate_email_keeps_original(client: httpx.AsyncClient) -> None:
    body = register_body(email="dup@example.com")
    assert (await register_verified(client, body)).status_code == 201
    other = register_body(email="DUP@example.com", password="another long secret")
    assert (await client.post("/api/v1/auth/register", json=other)).status_code == 202
    # no code went out for it, so no guess creates a second account
    r = await client.post("/api/v1/auth/register/verify", json={"identifier": "dup@example.com", "code": "000000"})
    assert_error(r, 400, "InvalidCode")
    assert_error(await client.post("/api/v1/auth/login", json={"identifier": "dup@example.com",
                                                               "password": other["password"]}), 401, "Unauthorized")
    r = await client.post("/api/v1/auth/login", json={"identifier": "dup@example.com", "password": body["password"]})
    assert r.status_code == 200


async def test_under_18_rules(client: httpx.AsyncClient) -> None:
    teen = (date.today().replace(year=date.today().year - 15)).isoformat()
    assert_error(await client.post("/api/v1/auth/register", json=register_body(date_of_birth=teen)),
                 422, "ValidationError")
    assert_error(await client.post("/api/v1/auth/register",
                                   json=register_body(date_of_birth=teen, role="teacher")), 422, "ValidationError")
    guardian = {"guardian_name": "Pat Doe", "guardian_contact": "pat@example.com", "relationship": "mother",
                "consent": True}
    r = await register_verified(client, register_body(date_of_birth=teen, guardian=guardian))
    assert r.status_code == 201, r.text
    refused = dict(guardian, consent=False)
    assert_error(await client.post("/api/v1/auth/register",
                                   json=register_body(date_of_birth=teen, guardian=refused)), 422, "ValidationError")


async def test_wrong_credentials_then_throttle(client: httpx.AsyncClient) -> None:
    body = register_body()
    await register_verified(client, body)
    for _ in range(5):
        r = await client.post("/api/v1/auth/login", json={"identifier": body["email"], "password": "wrong password!"})
        assert_error(r, 401, "Unauthorized")
    # even the right password is refused while throttled
    r = await client.post("/api/v1/auth/login", json={"identifier": body["email"], "password": body["password"]})
    assert_error(r, 429, "TooManyRequests")
    # unknown users get the same 401 (no account enumeration)
    r = await client.post("/api/v1/auth/login", json={"identifier": "nobody@example.com", "password": "x" * 12})
    assert_error(r, 401, "Unauthorized")


async def test_injection_strings_are_stored_verbatim(client: httpx.AsyncClient) -> None:
    name = "Robert'); DROP TABLE users;-- <script>alert(1)</script>"
    body = register_body(display_name=name)
    r = await register_verified(client, body)
    assert r.status_code == 201
    assert r.json()["display_name"] == name
    r = await client.post("/api/v1/auth/login", json={"identifier": "' OR 1=1 --", "password": "' OR '1'='1"})
    assert_error(r, 401, "Unauthorized")
    r = await client.post("/api/v1/auth/login", json={"identifier": body["email"], "password": body["password"]})
    assert r.json()["user"]["display_name"] == name


async def test_malformed_json_and_missing_auth(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 422, "ValidationError")
    assert_error(await client.get("/api/v1/me"), 401, "Unauthorized")
    assert_error(await client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}), 401, "Unauthorized")
    assert_error(await client.get("/api/v1/no-such-thing"), 404, "NotFound")


async def test_healthz_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/auth/register" in spec["paths"]
    assert "202" in spec["paths"]["/api/v1/auth/register"]["post"]["responses"]
    assert "429" in spec["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert (await client.get("/docs")).status_code == 200
