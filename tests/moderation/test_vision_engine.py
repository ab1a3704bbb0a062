"""Screen text (RapidOCR) and face presence (OpenCV Haar), alone and through ``analyze_file``."""

from __future__ import annotations

import cv2
import pytest

from moderation import ocr
from moderation.analyze import analyze_file
from moderation.faces import detect_faces
from tests.moderation import fixtures as fx

pytestmark = pytest.mark.slow  # OCR takes ~0.5-1 s per frame on 2 cores


def _img(path):  # type: ignore[no-untyped-def]
    return cv2.imread(str(path))


def test_ocr_reads_screen_text_with_boxes_in_reading_order() -> None:
    path = fx.text_image(["WeChat: teacher_li 13812345678", "Lesson 3: fractions"])
    boxes = ocr.read_text(_img(path))
    texts = [b.text for b in boxes]
    assert texts[0].replace(" ", "") == "WeChat:teacher_li13812345678"
    assert "fractions" in texts[-1]
    for b in boxes:
        assert len(b.box) == 4 and 0.5 <= b.score <= 1.0
    assert boxes[0].top < boxes[-1].top
    assert ocr.get_engine() is ocr.get_engine()  # one engine per process


def test_faces_are_found_on_a_face_and_not_on_text() -> None:
    faces = detect_faces(_img(fx.face_image()))
    assert len(faces) == 1
    _, _, w, h = faces[0]
    assert w > 80 and h > 80
    assert detect_faces(_img(fx.text_image(["no faces here"]))) == []


def test_screenshot_with_contact_details_is_flagged_with_its_box() -> None:
    result = analyze_file(fx.text_image(["WeChat: teacher_li 13812345678"]))
    assert result.status == "ok" and result.kind == "snapshot"
    rules = {h.rule_id: h for h in result.hits}
    assert set(rules) == {"contact.messenger", "contact.phone"}
    phone = rules["contact.phone"]
    assert phone.source == "screen" and phone.evidence["frame_time"] == 0.0
    assert phone.evidence["value"] == "13812345678"
    assert len(phone.evidence["boxes"][0]) == 4
    assert result.face_count == 0


def test_math_worksheet_is_not_flagged() -> None:
    sheet = fx.text_image(
        [
            "Worksheet 7: multiplication",
            "1) 7 x 8 = 56      2) 12 x 12 = 144",
            "3) 123456 x 9 = 1111104",
            "4) Year 1969: Apollo 11, page 42",
            "Price on the platform: $20",
        ]
    )
    result = analyze_file(sheet)
    assert result.status == "ok" and "multiplication" in result.ocr_text
    assert result.hits == []


def test_screen_share_hit_is_timed_at_the_frame_that_shows_it() -> None:
    video = fx.screen_video(
        [(2.0, ["Lesson 3: fractions"]), (2.0, ["1/2 + 1/4 = 3/4"]), (2.0, ["Email me: anna.smith@gmail.com"])]
    )
    result = analyze_file(video, kind="screen")
    assert result.status == "ok" and result.transcript is None
    (hit,) = result.hits
    assert (hit.rule_id, hit.start, hit.end) == ("contact.email", 4.0, 4.0)
    assert hit.evidence["value"] == "anna.smith@gmail.com"
