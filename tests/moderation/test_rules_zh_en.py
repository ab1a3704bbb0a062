"""The Mandarin and new English rules of the default policy, one behaviour at a time.

The corpus test (``test_rules_corpus_zh_en.py``) measures recall; these pin down which rule
answers, how sure it is, and lessons that must stay quiet.
"""

from __future__ import annotations

import pytest

from moderation.rules import Policy, TextSpan, evaluate, evaluate_text


def _rules(text: str) -> set[str]:
    return {h.rule_id for h in evaluate_text(text)}


def test_partial_number_after_a_strong_cue_is_a_low_confidence_flag() -> None:
    (hit,) = evaluate_text("my number is six one seven, five five five")
    assert (hit.rule_id, hit.category, hit.confidence) == ("contact.phone_partial", "off_platform_contact", 0.5)
    assert hit.evidence["value"] == "617555"
    # five digits are too few to mean anything; a whole number is the ordinary phone rule
    assert evaluate_text("my phone number is 5 5 5 1 2 and I forget the rest") == []
    assert _rules("my number is 415 555 2671") == {"contact.phone"}
    # a strong cue is a person's number, not "the number is" of a sum
    assert evaluate_text("the number is 123456, what is it times 2") == []


def test_mainland_mobile_needs_no_cue_but_other_digits_do() -> None:
    (hit,) = evaluate_text("有事 13688889999")
    alone = Policy.default().rule("contact.phone").params.alone_confidence
    assert hit.rule_id == "contact.phone" and hit.confidence == alone and "cue" not in hit.evidence
    assert evaluate_text("the answer is 4155552671") == []
    assert evaluate_text("12345678910") == []  # not 1[3-9]


def test_traditional_input_is_quoted_as_written() -> None:
    (hit,) = evaluate_text("我的電話是一五九，二二三三，四四五五，你記一下。")
    assert hit.quote == "我的電話是[一五九，二二三三，四四五五]，你記一下。"
    assert hit.evidence["value"] == "15922334455"


def test_a_number_dictated_across_two_slices_is_caught_where_it_completes() -> None:
    first, carry = evaluate([TextSpan("我的手机号是一三八一二", 0.0, 3.0)], duration=3.0)
    assert first == []
    second, _ = evaluate([TextSpan("三四五六七八", 0.0, 2.0)], carry, duration=2.0)
    assert [(h.rule_id, h.evidence["value"]) for h in second] == [("contact.phone", "13812345678")]
    assert second[0].evidence["continues_previous_slice"] is True


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("加我薇信，我发你资料", "contact.messenger"),
        ("我的vx是 lily8899，加一下。", "contact.messenger"),  # mixed: a Latin handle in Mandarin
        ("wx 搜 teacher_li 就能找到我", "contact.messenger"),
        ("我的扣扣号是三五七九二四六八一", "contact.messenger"),
        ("用釘釘上課比較方便，我拉你進群", "contact.meeting_link"),
        ("以後私下上課吧", "contact.invitation"),
        ("你把学费直接打到我的支付宝", "payment.bypass"),
        ("钱你微信转给我，平台抽成太高了。", "payment.bypass"),
        ("你這個白痴", "abuse.insult"),
        ("let's keep talking on telegram after class", "contact.invitation"),
        ("can we continue our lessons privately", "contact.invitation"),
        ("add me on what's happened, my id is kate 99", "contact.messenger"),
        ("we chat me after class, my id is sunny 1 2 3", "contact.messenger"),
        ("send the homework to my personal email instead of the app", "contact.personal_channel"),
        ("I'll find out where you live and hurt you", "abuse.threat"),
    ],
)
def test_new_rules_answer(text: str, rule: str) -> None:
    assert rule in _rules(text)


def test_calling_someone_directly_is_contact_not_payment() -> None:
    assert _rules("我的手机号是一三八一二三四五六七八，你可以直接打给我。") == {"contact.phone"}


@pytest.mark.parametrize(
    "text",
    [
        "my signal is bad today, can you hear me",
        "let's continue on page 12",
        "let's continue directly with exercise 3",
        "let's move on to line 5",
        "let's move to teams of four",
        "choose your own number between 1 and 10",
        "ask sb to do sth is a common pattern",
        "we can talk about whatsapp and wechat in the next unit",
        "my email was hacked so I only use the platform now",
        "我爸爸公司用钉钉",
        "你的微信头像很好看",
        "微信是2011年推出的",
        "微信的用户数是多少",
        "他在微信上有很多好友",
        "春节的时候长辈会给孩子发红包",
        "把作业转给我",
        "平台的手续费是多少",
        "请翻到第一百零三页",
        "一九四九年十月一日",
        "我们一起数到一百：一，二，三，四，五，六，七，八，九，十",
        "老师，我的QQ音乐听不了",
        "支付宝是阿里巴巴的产品",
    ],
)
def test_lessons_stay_quiet(text: str) -> None:
    assert evaluate_text(text) == []
