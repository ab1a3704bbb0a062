"""Registration that does not tell who has an account: same answer, code by real SMTP (aiosmtpd)
or the SMS outbox, owner notified instead; codes expire, work once, are throttled, stored hashed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import select

from accounts.models import OutboxMessage, PendingRegistration
from classguard.settings import Settings
from storage.runtime import get_runtime
from tests.accounts.clients import app_with, client_at, sqlite_settings_like, try_login
from tests.factories import code_sent_to, make_user, messages_to, register_body
from tests.mail_sink import MailSink, code_in

REGISTER, VERIFY = "/api/v1/auth/register", "/api/v1/auth/register/verify"


@pytest.fixture
def mail() -> Iterator[MailSink]:
    with MailSink() as sink:
        yield sink


@pytest.fixture
async def smtp_client(settings: Settings, mail: MailSink) -> AsyncIterator[httpx.AsyncClient]:
    async with app_with(sqlite_settings_like(settings, **mail.settings(), registration_code_ttl_seconds=60)) as app, \
            client_at(app, "192.0.2.40") as c:
        yield c


async def test_existing_address_gets_the_same_answer_and_a_notice(smtp_client: httpx.AsyncClient,
                                                                  mail: MailSink) -> None:
    owner = await make_user(email="taken@example.com")
    fresh = await smtp_client.post(REGISTER, json=register_body(email="fresh@example.com"))
    taken = await smtp_client.post(REGISTER, json=register_body(email="Taken@Example.com"),
                                   headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert (fresh.status_code, fresh.json()) == (taken.status_code, taken.json())
    assert fresh.status_code == 202 and set(fresh.json()) == {"status", "detail"}
    # the new address gets a code by real SMTP; the owner a notice in their language, no code
    code = code_in((await mail.await_for("fresh@example.com"))[0])
    notice = (await mail.await_for(owner.email))[0]
    assert "already has an account" in notice.text and not code_in_or_none(notice.text)
    r = await smtp_client.post(VERIFY, json={"identifier": "FRESH@example.com", "code": code})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "fresh@example.com"
    assert (await try_login(smtp_client, "fresh@example.com", register_body()["password"])).status_code == 200
    # a delivered message keeps no text in the database; codes are stored only hashed
    async with get_runtime().sessionmaker() as s:
        sent = list((await s.execute(select(OutboxMessage))).scalars())
        assert sent and all(m.status == "sent" and m.body_ct is None for m in sent)
        rows = list((await s.execute(select(PendingRegistration))).scalars())
        assert rows and all(code not in r.code_hash for r in rows)


def code_in_or_none(text: str) -> str | None:
    import re

    found = re.search(r"\b\d{6}\b", text)
    return found.group(0) if found else None


async def test_notice_in_chinese_for_a_chinese_speaking_owner(client: httpx.AsyncClient) -> None:
    r = await client.post(REGISTER, json=register_body(email="li@example.com", language="zh"))
    code = await code_sent_to("li@example.com")
    assert "验证码" in (await messages_to("li@example.com"))[0].subject
    assert (await client.post(VERIFY, json={"identifier": "li@example.com", "code": code})).status_code == 201
    r = await client.post(REGISTER, json=register_body(email="li@example.com"))  # someone else, English
    assert r.status_code == 202
    assert "有人尝试" in (await messages_to("li@example.com"))[0].subject


async def test_phone_registration_code_comes_through_the_sms_outbox(client: httpx.AsyncClient) -> None:
    body = register_body(email=None, phone="+1 415 555 2671")
    assert (await client.post(REGISTER, json=body)).status_code == 202
    [sms] = await messages_to("+14155552671")
    assert sms.channel == "sms"
    await asyncio.sleep(0.2)  # the delivery job marks it held for the operator
    assert (await messages_to("+14155552671"))[0].status == "held"
    code = await code_sent_to("tel:+1-415-555-2671")
    r = await client.post(VERIFY, json={"identifier": "(+1) 415 555 2671", "code": code})
    assert r.status_code == 201 and r.json()["phone"] == "+14155552671"


async def test_code_works_once(client: httpx.AsyncClient) -> None:
    body = register_body(email="once@example.com")
    await client.post(REGISTER, json=body)
    code = await code_sent_to("once@example.com")
    assert (await client.post(VERIFY, json={"identifier": "once@example.com", "code": code})).status_code == 201
    again = await client.post(VERIFY, json={"identifier": "once@example.com", "code": code})
    assert again.status_code == 400 and again.json()["error"] == "InvalidCode"


async def test_code_expires(settings: Settings) -> None:
    async with app_with(sqlite_settings_like(settings, registration_code_ttl_seconds=1)) as app, \
            client_at(app, "192.0.2.41") as c:
        await c.post(REGISTER, json=register_body(email="late@example.com"))
        code = await code_sent_to("late@example.com")
        await asyncio.sleep(1.5)
        r = await c.post(VERIFY, json={"identifier": "late@example.com", "code": code})
        assert r.status_code == 400 and r.json()["error"] == "InvalidCode"


async def test_wrong_codes_use_up_the_code(client: httpx.AsyncClient) -> None:
    await client.post(REGISTER, json=register_body(email="guess@example.com"))
    code = await code_sent_to("guess@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        r = await client.post(VERIFY, json={"identifier": "guess@example.com", "code": wrong})
        assert r.status_code == 400
    r = await client.post(VERIFY, json={"identifier": "guess@example.com", "code": code})
    assert r.status_code == 400 and r.json()["error"] == "InvalidCode"  # attempts used up


async def test_codes_per_address_are_throttled_alike_for_new_and_existing(client: httpx.AsyncClient) -> None:
    await make_user(email="owner@example.com")
    for address in ("new@example.com", "owner@example.com"):
        codes = [(await client.post(REGISTER, json=register_body(email=address))).status_code for _ in range(6)]
        assert codes == [202] * 5 + [429], (address, codes)


async def test_only_one_contact_per_registration(client: httpx.AsyncClient) -> None:
    r = await client.post(REGISTER, json=register_body(phone="+14155552671"))
    assert r.status_code == 422 and r.json()["error"] == "ValidationError"
