"""The moderators' console in real Chromium (Debian package, Playwright), against ``classguard
serve``: a moderator logs in, opens the top item, plays the slice (real espeak-ng speech in
WebM, served with HTTP ranges) and confirms a suspension with an explanation; the suspended
user's next login fails with 403; the user appeals, a second moderator overturns on the page,
and the user can log in again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from accounts.models import User
from classguard.bootstrap import build_runtime
from classguard.settings import Settings
from storage.runtime import set_runtime
from tests.classroom.live_server import PASSWORD, LiveServer
from tests.factories import make_user
from tests.moderation.review.factory import flag_slice, live_room

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "var").start()
    yield srv
    srv.stop()


async def _seed(data_dir: Path) -> dict[str, Any]:
    """Users and one flagged slice, written into the server's database and media directory."""
    rt = build_runtime(Settings(data_dir=data_dir))
    try:
        room = await live_room()
        sid, _ = await flag_slice(room)
        first = await make_user("moderator")
        second = await make_user("moderator")
        async with rt.sessionmaker() as s:
            student = await s.get(User, room.speakers[-1])
            assert student is not None
            email = student.email
        return {"slice_id": str(sid), "student_email": email, "first": first.email, "second": second.email}
    finally:
        await rt.engine.dispose()
        set_runtime(None)


def _login_page(browser: Any, base: str, email: str, violations: list[str]) -> Any:
    """Log in on the console page; anything its Content-Security-Policy blocks lands in ``violations``."""
    context = browser.new_context()  # a fresh profile: no cookies from the other moderator
    page = context.new_page()

    def on_console(m: Any) -> None:
        if m.type == "error":
            print(f"[{email} console] {m.type}: {m.text}")
        if "Content Security Policy" in m.text:
            violations.append(m.text)

    page.on("console", on_console)
    response = page.goto(f"{base}/moderation")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp  # the console runs under its own CSP
    page.fill("#login-identifier", email)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector(".queue-item", timeout=20_000)
    return page


def _wait_for(page: Any, expression: str, timeout: int = 20_000) -> None:
    """Poll ``expression`` until it is truthy. Playwright's ``wait_for_function`` evaluates its
    predicate with ``eval`` inside the page, which the console's CSP (rightly) refuses;
    ``page.evaluate`` goes through the DevTools protocol instead."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} ms: {expression}")
        page.wait_for_timeout(100)


def _login_status(base: str, email: str) -> int:
    return httpx.post(f"{base}/api/v1/auth/login", json={"identifier": email, "password": PASSWORD},
                      timeout=30).status_code


def test_moderator_suspends_in_the_console_and_an_appeal_lifts_it(server: LiveServer) -> None:
    from playwright.sync_api import sync_playwright

    seeded = asyncio.run(_seed(server.data_dir))
    base = server.base
    violations: list[str] = []
    assert _login_status(base, seeded["student_email"]) == 200

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = _login_page(browser, base, seeded["first"], violations)
            # Open the top item (claims it) and play the recording.
            page.click(".queue-item >> nth=0")
            page.wait_for_selector("#detail:not([hidden])")
            _wait_for(page, "document.querySelector('#media').readyState >= 2", timeout=20_000)
            assert page.inner_text("#transcript mark") == "5551234567"
            # The case's timeline lists its hits by slice (this case has one slice).
            assert "slice 1 (mic)" in page.inner_text("#timeline") and "[5551234567]" in page.inner_text("#timeline")
            assert page.inner_text("#transcript-lang") == "English · 英语"  # the detected language
            page.locator("body").press(" ")  # keyboard: play
            _wait_for(page, "document.querySelector('#media').currentTime > 0.5", timeout=20_000)
            page.click("#flags button.jump >> nth=0")  # seek to the flag (a byte-range request)
            _wait_for(page, "document.querySelector('#media').currentTime >= 2.0", timeout=20_000)

            # Confirm (keyboard "c"), suspend for 7 days, with a reason and an explanation.
            page.evaluate("document.activeElement.blur()")  # shortcuts are off while typing in a field
            page.keyboard.press("c")
            assert page.is_checked("#outcome-confirm")
            page.select_option("#action", "suspend")
            page.fill("#days", "7")
            page.fill("#reason", "phone number to take lessons off-platform")
            page.fill("#explanation", "You shared your phone number in class to arrange lessons outside the "
                                      "platform. Your account is suspended for 7 days.")
            page.click("#decide-submit")
            _wait_for(page, "document.querySelector('#notice').textContent.startsWith('Decided: confirm')",
                                   timeout=20_000)
            assert "suspend" in page.inner_text("#notice")
        finally:
            browser.close()

        # The suspended user cannot log in; they appeal with an appeal-only token.
        assert _login_status(base, seeded["student_email"]) == 403
        r = httpx.post(f"{base}/api/v1/appeals/session",
                       json={"identifier": seeded["student_email"], "password": PASSWORD}, timeout=30)
        assert r.status_code == 201, r.text
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        [statement] = httpx.get(f"{base}/api/v1/me/decisions", headers=headers, timeout=30).json()
        assert statement["action"] == "suspend" and statement["duration_days"] == 7
        assert statement["automated_decision"] == "partially" and "phone number" in statement["explanation"]
        r = httpx.post(f"{base}/api/v1/appeals", headers=headers, timeout=30, json={
            "decision_id": statement["decision_id"], "text": "I read out the school office's number, not mine."})
        assert r.status_code == 201, r.text

        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = _login_page(browser, base, seeded["second"], violations)
            page.click(".queue-item >> nth=0")
            page.wait_for_selector("#appeal:not([hidden])")
            assert "school office" in page.inner_text("#appeal-text")
            page.select_option("#appeal-outcome", "overturn")
            page.fill("#appeal-reason", "the number is the school's public line")
            page.fill("#appeal-explanation", "The number you read out is the school's office line. "
                                             "The suspension is lifted.")
            page.click("#appeal-submit")
            _wait_for(page, "document.querySelector('#notice').textContent === 'Appeal overturned.'",
                                   timeout=20_000)
        finally:
            browser.close()

    assert _login_status(base, seeded["student_email"]) == 200
    assert violations == []  # login, queue, playback, frames, decide and appeal all ran under the CSP
    # The playback was logged: one recording open per moderator who played it.
    admin_login = httpx.post(f"{base}/api/v1/auth/login", json={"identifier": seeded["second"],
                                                                "password": PASSWORD}, timeout=30)
    token = admin_login.json()["token"]
    queue = httpx.get(f"{base}/api/v1/moderation/queue", params={"status": "decided"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30).json()["items"]
    item_id = next(i["id"] for i in queue if i["slice_id"] == seeded["slice_id"])
    events = httpx.get(f"{base}/api/v1/moderation/items/{item_id}/events",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    kinds = [e["kind"] for e in events]
    assert kinds.count("recording_opened") == 2 and "overturned" in kinds
