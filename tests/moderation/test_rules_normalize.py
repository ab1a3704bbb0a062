"""Text normalisation for the rules: width, Traditional to Simplified, Chinese numerals, raw offsets."""

from __future__ import annotations

import pytest

from moderation.rules import Doc, normalise
from moderation.rules.normalize import to_simplified


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("ＶＸ是ｌｉｌｙ８８", "vx是lily88"),  # full-width letters and digits
        ("我的電話號碼", "我的电话号码"),  # Traditional, as Whisper writes Mandarin
        ("我們私下聯繫吧", "我们私下联系吧"),
        ("轉帳給我", "转帐给我"),
        ("call me", "call me"),  # no CJK: untouched
    ],
)
def test_width_and_script(raw: str, norm: str) -> None:
    assert normalise(raw).text == norm


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        # dictation: one group per digit, so the digit-run rules read one number
        ("一三八一二三四五六七八", "1 3 8 1 2 3 4 5 6 7 8"),
        ("幺三九", "1 3 9"),  # 幺 is a dictated 1
        ("两八六", "2 8 6"),  # 两 is a 2
        ("零〇七", "0 0 7"),
        ("一五九，二二三三", "1 5 9,2 2 3 3"),  # full-width comma folded, kept as the group gap
        # compounds become their value
        ("第四十五页", "第45页"),
        ("八百四十万人", "8400000人"),
        ("三千四百五十六", "3456"),
        ("两百三十页", "230页"),
        ("一千零五", "1005"),
        ("十五个", "15个"),
        ("一万", "10000"),
        # a lone numeral inside a word stays a character
        ("一起 两分钟 第一次 十点半", "一起 两分钟 第一次 十点半"),
        ("七点四十五分", "七点45分"),
        # counting keeps its steps, so it is not read as a number to dial
        ("一二三四五六七八九十", "1 2 3 4 5 6 7 8 9 10"),
        # English number words still become digits, next to Mandarin too
        ("我的wx是 amy two zero one zero", "我的wx是 amy 2 0 1 0"),
    ],
)
def test_chinese_numerals(raw: str, norm: str) -> None:
    assert normalise(raw).text == norm


def test_dictated_groups_make_one_digit_run() -> None:
    (run,) = Doc.build("我的電話是一五九，二二三三，四四五五").runs
    assert run.digits == "15922334455" and not run.written


def test_chinese_counting_is_counting() -> None:
    (run,) = Doc.build("一二三四五六七八九十，大家跟我一起数").runs
    assert run.counting and not run.identifier


def test_offsets_point_back_to_the_raw_characters() -> None:
    raw = "號碼是幺三九 零零七七"
    norm = normalise(raw)
    start = norm.text.index("1")
    a, b = norm.raw_range(start, len(norm.text))
    assert raw[a:b] == "幺三九 零零七七"
    a, b = norm.raw_range(0, 2)
    assert raw[a:b] == "號碼"  # the quote shows what was said, in the script it was written in


def test_to_simplified() -> None:
    assert to_simplified("騰訊會議 釘釘 飛書") == "腾讯会议 钉钉 飞书"
    assert to_simplified("WhatsApp 123") == "WhatsApp 123"
