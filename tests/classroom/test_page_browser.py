"""The class page in real Chromium (Debian package) driven by Playwright, against ``classguard serve``.

The teacher's fake microphone plays speech made with espeak-ng; the test switches the mic on
(0–5 s), off (5–9 s) and on (9–13 s) on the page, and checks the slices that result: inside the
on-intervals, none in the off-interval, about 9 s in all, every one playable and not silent; and
that the recording indicator showed (for the teacher, on both pages) only while on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.classroom.live_server import PASSWORD, LiveServer, ServerUser
from tests.classroom.media_checks import decode_webm, speech_wav

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOLERANCE = 0.7
SCHEDULE = ((0.0, 5.0), (9.0, 13.0))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "var", {"CLASSGUARD_SEGMENT_SECONDS": "3"}).start()
    yield srv
    srv.stop()


def _chromium_args(wav: Path) -> list[str]:
    return ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"]


def _open_class(browser: Any, base: str, user: ServerUser, class_id: str, query: str = "") -> Any:
    """A fresh context (own cookies) that logs in on the page and joins the class."""
    context = browser.new_context(bypass_csp=True)  # the page forbids eval; the test needs it
    page = context.new_page()
    page.on("console", lambda m: print(f"[{user.email} console] {m.text}") if m.type == "error" else None)
    page.goto(f"{base}/classes/{class_id}{query}")
    page.get_by_test_id("login-identifier").fill(user.email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_function("window.cg && window.cg.state === 'joined'", timeout=20000)
    return page


def _wait_until(t0: float, offset: float) -> None:
    delay = t0 + offset - time.time()
    if delay > 0:
        time.sleep(delay)


def test_mic_toggles_on_the_class_page_make_slices_only_while_on(server: LiveServer, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    wav = speech_wav(tmp_path / "speech.wav")
    teacher = server.register("teacher@example.com", "teacher", "Ms Teacher")
    student = server.register("student@example.com", "student", "Sam Student")
    moderator = server.create_staff("mod@example.com")
    class_id = server.make_class(teacher, [student])

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=_chromium_args(wav),
                                     headless=True)
        try:
            tpage = _open_class(browser, server.base, teacher, class_id)
            spage = _open_class(browser, server.base, student, class_id, "?fakescreen=1")
            session_id = tpage.evaluate("window.cg.sessionId")
            assert spage.evaluate("window.cg.sessionId") == session_id
            rec_on_student_page = spage.get_by_test_id(f"rec-{teacher.id}")
            self_banner = tpage.get_by_test_id("self-recording")
            assert not rec_on_student_page.is_visible() and not self_banner.is_visible()

            clicks: list[tuple[float, float]] = []
            indicator_seen: list[tuple[str, bool, bool]] = []
            t0 = time.time()
            for start, end in SCHEDULE:
                _wait_until(t0, start)
                on_at = time.time()
                tpage.get_by_test_id("toggle-mic").click()
                rec_on_student_page.wait_for(state="visible", timeout=4000)
                self_banner.wait_for(state="visible", timeout=4000)
                indicator_seen.append(("on", rec_on_student_page.is_visible(), self_banner.is_visible()))
                _wait_until(t0, end)
                off_at = time.time()
                tpage.get_by_test_id("toggle-mic").click()
                rec_on_student_page.wait_for(state="hidden", timeout=4000)
                self_banner.wait_for(state="hidden", timeout=4000)
                indicator_seen.append(("off", rec_on_student_page.is_visible(), self_banner.is_visible()))
                clicks.append((on_at, off_at))
                if start == 0.0:
                    # the student hears the teacher: RTP audio arrives on the student's page
                    stats = spage.evaluate("window.cgStats()")
                    assert stats["inboundAudioBytes"] > 0, stats
                    assert spage.locator(f'[data-testid="media-{teacher.id}-mic"]').count() == 1

            # the student shares a (canvas) screen and the camera: the teacher sees both, and the
            # indicator shows the student recorded (screen) while it is on
            spage.get_by_test_id("toggle-screen").click()
            spage.get_by_test_id("toggle-camera").click()
            for source in ("screen", "camera"):
                tpage.wait_for_function(
                    f"""(() => {{ const v = document.querySelector('[data-testid="media-{student.id}-{source}"]');
                    return v && v.videoWidth > 0; }})()""", timeout=10000)
            tpage.get_by_test_id(f"rec-{student.id}").wait_for(state="visible", timeout=4000)
            screen_size = tpage.evaluate(
                f"""(() => {{ const v = document.querySelector('[data-testid="media-{student.id}-screen"]');
                return [v.videoWidth, v.videoHeight]; }})()""")
            time.sleep(2.0)
            tpage.screenshot(path=str(tmp_path / "teacher.png"))
            spage.get_by_test_id("toggle-screen").click()
            spage.get_by_test_id("toggle-camera").click()
            tpage.get_by_test_id(f"rec-{student.id}").wait_for(state="hidden", timeout=4000)
            time.sleep(1.0)
            tpage.get_by_test_id("leave").click()
            spage.get_by_test_id("leave").click()
            time.sleep(1.0)
        finally:
            browser.close()

    assert indicator_seen == [("on", True, True), ("off", False, False)] * 2

    # the server's trail: two on-intervals of the teacher's mic, by the participant
    trail = server.get(f"/api/v1/sessions/{session_id}/recording-events", moderator)
    mic_events = [(e["enabled"], e["by"]) for e in trail if e["user_id"] == teacher.id and e["source"] == "mic"]
    assert mic_events == [(True, "participant"), (False, "participant")] * 2, mic_events

    slices = _wait_for_slices(server, session_id, moderator)
    mic = [s for s in slices if s["source"] == "mic"]
    assert mic and all(s["user_id"] == teacher.id for s in mic), slices  # the student never switched on
    screen = [s for s in slices if s["source"] == "screen"]
    assert screen and all(s["user_id"] == student.id and s["content_type"] == "video/webm" for s in screen)
    print(f"student's screen arrived at the teacher as {screen_size}; {len(screen)} screen slices")
    for s in screen:
        path = tmp_path / f"screen-{s['seq']}.webm"
        path.write_bytes((server.data_dir / "media" / s["media_key"]).read_bytes())
        decoded = decode_webm(path)
        assert decoded.packets > 0 and decoded.errors == 0 and decoded.frames == decoded.packets, decoded
    total = 0.0
    for s in mic:
        start = datetime.fromisoformat(s["started_at"]).timestamp()
        end = datetime.fromisoformat(s["ended_at"]).timestamp()
        assert any(on - TOLERANCE <= start and end <= off + TOLERANCE for on, off in clicks), (
            f"slice {s['seq']} [{start - t0:.2f}, {end - t0:.2f}] s is outside the on-intervals "
            f"{[(round(a - t0, 2), round(b - t0, 2)) for a, b in clicks]}")
        path = tmp_path / f"slice-{s['seq']}.webm"
        r = server.get(f"/api/v1/slices/{s['id']}", moderator)
        assert r["media_key"] == s["media_key"]
        media_file = server.data_dir / "media" / s["media_key"]
        path.write_bytes(media_file.read_bytes())
        decoded = decode_webm(path)
        assert decoded.packets > 0 and decoded.errors == 0 and decoded.frames == decoded.packets, decoded
        assert decoded.rms > 0.003, (s["seq"], decoded)  # speech, not silence
        total += s["duration_s"]
        print(f"  slice {s['seq']}: {start - t0:6.2f}–{end - t0:6.2f} s, {s['duration_s']:.2f} s, "
              f"{decoded.packets} packets, rms {decoded.rms:.4f}, {s['close_reason']}")
    on_total = sum(off - on for on, off in clicks)
    print(f"mic slices: {len(mic)}, {total:.2f} s recorded for {on_total:.2f} s switched on")
    assert 8.0 <= total <= on_total + 0.5, (total, on_total)


def _wait_for_slices(server: LiveServer, session_id: str, staff: ServerUser, timeout: float = 15.0) -> list[Any]:
    """Slices are stored as segments close; wait until the count stops changing."""
    deadline = time.monotonic() + timeout
    last: list[Any] = []
    while time.monotonic() < deadline:
        now = server.get(f"/api/v1/sessions/{session_id}/slices", staff)
        if now and len(now) == len(last):
            return list(now)
        last = now
        time.sleep(1.0)
    return last
