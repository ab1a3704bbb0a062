"""The live nudge in real Chromium (Debian package, Playwright) against ``classguard serve``: a
student says a phone number in class (espeak-ng speech as the browser's fake microphone); the
relay records it, the pipeline (ASR, rules) flags it, and within seconds the class page shows
the student the platform notice in the page's language, and the teacher's page shows that it
was shown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.classroom.live_server import LiveServer
from tests.classroom.media_checks import speech_wav
from tests.classroom.test_page_browser import _chromium_args, _open_class

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAID = "Hello class. If you have questions, my phone number is 5 5 5 1 2 3 4 5 6 7. Call me there."


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "var", {"CLASSGUARD_SEGMENT_SECONDS": "10"}).start()
    yield srv
    srv.stop()


def test_the_speaker_sees_the_nudge_after_saying_a_phone_number(server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    wav = speech_wav(tmp_path / "phone.wav", SAID)
    teacher = server.register("teacher@example.com", "teacher", "Ms Teacher")
    student = server.register("student@example.com", "student", "Sam Student")
    class_id = server.make_class(teacher, [student])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=_chromium_args(wav), headless=True)
        try:
            tpage = _open_class(browser, server.base, teacher, class_id)
            spage = _open_class(browser, server.base, student, class_id)
            session_id = tpage.evaluate("window.cg.sessionId")
            spage.get_by_test_id("lang").select_option("zh")  # the student reads the page in Chinese
            notice = spage.get_by_test_id("policy-notice")
            assert not notice.is_visible()
            spage.get_by_test_id("toggle-mic").click()
            started = time.monotonic()
            notice.wait_for(state="visible", timeout=90_000)
            print(f"nudge shown {time.monotonic() - started:.1f} s after the mic went on")
            assert "平台内禁止分享联系方式或安排平台外付款" in notice.inner_text()
            spage.get_by_test_id("lang").select_option("en")
            assert "not allowed" in notice.inner_text() and "recorded for review" in notice.inner_text()

            shown = tpage.get_by_test_id("notices-shown")
            shown.get_by_text("Sam Student").wait_for(timeout=10_000)
            assert not tpage.get_by_test_id("policy-notice").is_visible()  # the teacher said nothing
            tpage.get_by_test_id("lang").select_option("zh")
            assert "已向 Sam Student 显示" in shown.inner_text()
        finally:
            browser.close()

    controls = server.get(f"/api/v1/sessions/{session_id}/control-events", teacher)
    assert [(c["action"], c["user_id"]) for c in controls] == [("notice", student.id)]  # stored, once
