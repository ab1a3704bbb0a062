"""Policy rules engine: number normalisation, evidence, carry across slices, determinism, policy files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from moderation.rules import (
    DEFAULT_POLICY_PATH,
    CarryState,
    Doc,
    Policy,
    PolicyError,
    TextSpan,
    card_network,
    evaluate,
    evaluate_text,
    normalise,
)


@pytest.mark.parametrize(
    ("spoken", "digits"),
    [
        ("oh four one two", "0 4 1 2"),
        ("double two triple five", "22 555"),
        ("fifty six", "56"),
        ("nineteen sixty nine", "19 69"),
        ("three hundred and five", "305"),
        ("one eight hundred five five five", "1 800 5 5 5"),
        ("two thousand twenty four", "2024"),
        ("Oh, I see", "oh, i see"),  # "oh" alone is not a zero
        ("a double room", "a double room"),
        ("ＷｅＣｈａｔ：１３８", "wechat:138"),  # full-width OCR output
    ],
)
def test_spoken_numbers_become_digits(spoken: str, digits: str) -> None:
    assert normalise(spoken).text == digits


def test_normalised_offsets_point_back_to_the_raw_words() -> None:
    raw = "call me on oh four one"
    norm = normalise(raw)
    start = norm.text.index("0")
    a, b = norm.raw_range(start, len(norm.text))
    assert raw[a:b] == "oh four one"


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("5, 5, 5, 1, 2, 3, 4", ["5551234"]),
        ("138 1234 5678", ["13812345678"]),
        ("22, 555, 891", ["22555891"]),
        ("(212) 555-0147", ["2125550147"]),
        ("1914, 1918 and 1939", ["1914", "1918", "1939"]),
        ("covid19 mp3", []),
    ],
)
def test_digit_runs(text: str, runs: list[str]) -> None:
    assert [r.digits for r in Doc.build(text).runs] == runs


def test_counting_is_not_a_phone_number() -> None:
    (run,) = Doc.build("1, 2, 3, 4, 5, 6, 7, 8, 9, 10").runs
    assert run.counting
    assert evaluate_text("call me when we count: one, two, three, four, five, six, seven, eight") == []


def test_spoken_to_and_for_between_digits_are_digits() -> None:
    assert normalise("call me on 041 to 345 678").text == "call me on 041 2 345 678"
    assert normalise("go to school for 2 hours").text == "go to school for 2 hours"


def test_speech_digits_need_a_cue_but_screen_numbers_do_not() -> None:
    assert evaluate_text("the answer is 4155552671") == []
    assert [h.rule_id for h in evaluate_text("4155552671", source="screen")] == ["contact.phone"]


def test_thousands_are_amounts_not_numbers_to_flag() -> None:
    (run,) = Doc.build("about 1,400,000,000 people").runs
    assert run.quantity
    assert evaluate_text("call me, about 1,400,000,000 people") == []


def test_card_networks() -> None:
    assert card_network("4111111111111111") == "visa"
    assert card_network("5555555555554444") == "mastercard"
    assert card_network("378282246310005") == "amex"
    assert card_network("1234567890123456") is None


def test_one_digit_run_is_one_category() -> None:
    """An 18-digit resident ID near "call me" is an identity number, not also a phone number."""
    hits = evaluate_text("call me, my id is 11010519491231002X")
    assert [h.category for h in hits] == ["personal_data"]
    assert hits[0].evidence["value"] == "11010519491231002X"


def test_checksums_keep_random_digits_out() -> None:
    assert evaluate_text("my id is 110105194912310021") == []  # wrong check digit
    assert evaluate_text("card 4111 1111 1111 1112") == []  # Luhn fails
    assert evaluate_text("the code is 123456789") == []  # 9 digits, no SSN cue


def test_hit_carries_rule_version_severity_quote_and_time() -> None:
    spans = [
        TextSpan("Good morning everyone.", 0.0, 2.0),
        TextSpan("Call me on 415 555 2671 after class.", 2.0, 5.5),
    ]
    hits, _ = evaluate(spans)
    (hit,) = hits
    assert (hit.category, hit.rule_id, hit.rule_version, hit.severity) == (
        "off_platform_contact",
        "contact.phone",
        Policy.default().rule("contact.phone").spec.version,  # the version the policy gives the rule
        "high",
    )
    # placed inside its 3.5 s segment by character position (with 1 s lead-in), not the whole segment
    assert 2.0 <= hit.start < 2.5 and 4.5 < hit.end <= 5.5 and hit.end - hit.start < 3.5
    assert hit.evidence["segment"] == [2.0, 5.5]
    assert "[415 555 2671]" in hit.quote and "Call me on" in hit.quote
    assert 0 < hit.confidence <= 1
    assert hit.evidence["value"] == "4155552671"
    assert hit.fingerprint


def test_critical_rule_carries_its_auto_action() -> None:
    (hit,) = evaluate_text("I will kill you after class")
    assert hit.severity == "critical" and hit.auto_action == "mute"


def test_phone_number_split_across_two_slices_is_caught_in_the_second() -> None:
    first = [
        TextSpan("Thanks for the lesson today.", 0.0, 2.0),
        TextSpan("My number is one three eight", 7.5, 10.0),
    ]
    second = [TextSpan("five five five, two four six eight, call me.", 0.0, 3.0)]

    hits1, carry = evaluate(first, duration=10.0)
    assert hits1 == []  # three digits are not a phone number yet
    assert carry.spans and carry.spans[-1].end == 0.0  # times are relative to the next slice

    hits2, _ = evaluate(second, carry, duration=10.0)
    (hit,) = hits2
    assert hit.rule_id == "contact.phone"
    assert hit.evidence["value"] == "1385552468"
    assert hit.evidence["continues_previous_slice"] is True
    assert hit.evidence["previous_slice_from"] == -2.5
    assert hit.start == 0.0 and hit.end == 3.0

    # Without the carry the second slice alone has 7 digits and a cue; the carry is what adds
    # the first three digits (and the evidence says so).
    alone, _ = evaluate(second, duration=10.0)
    assert alone[0].evidence["value"] == "5552468"


def test_a_hit_reported_in_one_slice_is_not_raised_again_from_the_carry() -> None:
    first = [TextSpan("you can reach me on 415 555 2671", 6.0, 9.5)]
    hits1, carry = evaluate(first, duration=10.0)
    assert [h.rule_id for h in hits1] == ["contact.phone"]
    hits2, _ = evaluate([TextSpan("ok, see you next week", 0.5, 2.0)], carry, duration=10.0)
    assert hits2 == []


def test_carry_round_trips_through_json_and_drops_old_speech() -> None:
    spans = [TextSpan(f"word{i} and more", float(i), float(i) + 0.5) for i in range(0, 30, 3)]
    _, carry = evaluate(spans, duration=30.0, carry_seconds=10.0)
    assert all(s.end > -10.0 for s in carry.spans)
    again = CarryState.from_dict(json.loads(json.dumps(carry.to_dict())))
    assert again == carry


def test_carry_from_another_policy_is_ignored() -> None:
    _, carry = evaluate([TextSpan("my number is one three eight", 8.0, 10.0)], duration=10.0)
    other = _policy_with(lambda d: d.update(version="other"))
    hits, _ = evaluate([TextSpan("1234 5678", 0.0, 2.0)], carry, policy=other, duration=10.0)
    assert hits == []


def test_same_input_same_hits_same_order() -> None:
    spans = [
        TextSpan("add me on WeChat, my number is 13812345678", 0.0, 4.0),
        TextSpan("pay me directly with PayPal, it is cheaper than the platform", 4.0, 8.0),
        TextSpan("WeChat: teacher_li 13812345678", 2.0, 2.0, "screen", frame_time=2.0, score=0.99),
    ]
    first, carry1 = evaluate(spans)
    second, carry2 = evaluate(list(reversed(spans)))
    assert [h.to_dict() for h in first] == [h.to_dict() for h in second]
    assert carry1 == carry2
    assert len({h.fingerprint for h in first}) == len(first)


def test_same_screen_text_on_several_frames_is_one_hit() -> None:
    box = ((10.0, 10.0), (300.0, 10.0), (300.0, 40.0), (10.0, 40.0))
    spans = [
        TextSpan("my email: anna.smith@gmail.com", t, t, "screen", box=box, frame_time=t, score=0.98)
        for t in (0.0, 2.5, 5.0)
    ]
    (hit,) = evaluate(spans)[0]
    assert hit.source == "screen"
    assert hit.evidence["frame_time"] == 0.0
    assert hit.evidence["also_in_frames"] == [2.5, 5.0]
    assert hit.evidence["boxes"] == [[list(p) for p in box]]
    assert hit.confidence <= 0.98


def test_locale_limits_custom_lists() -> None:
    text = "我可以帮你代写论文"
    assert [h.category for h in evaluate([TextSpan(text, 0, 1)], locale="zh")[0]] == ["custom"]
    assert evaluate([TextSpan(text, 0, 1)], locale="en")[0] == []


def test_merged_hits_keep_every_matched_value() -> None:
    (hit,) = [h for h in evaluate_text("You are so stupid, shut up you idiot.") if h.rule_id == "abuse.insult"]
    assert hit.evidence["values"] == ["you are so stupid", "shut up", "you idiot"]


# --- policy documents ---------------------------------------------------------------------


def _default_doc() -> dict:
    return json.loads(DEFAULT_POLICY_PATH.read_text())


def _policy_with(change) -> Policy:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(_default_doc())
    change(doc)
    return Policy.from_dict(doc)


def test_default_policy_is_versioned_and_every_rule_complete() -> None:
    policy = Policy.default()
    assert policy.version and len(policy.digest) == 16
    cats = {r.spec.category for r in policy.rules}
    assert cats == {"off_platform_contact", "payment_bypass", "abuse", "personal_data", "custom"}
    for r in policy.rules:
        assert r.spec.version >= 1 and r.spec.severity in ("low", "medium", "high", "critical")


def test_policy_loads_from_a_file_and_admin_keywords_apply(tmp_path: Path) -> None:
    doc = _default_doc()
    doc["version"] = "school-42"
    doc["rules"].append(
        {
            "id": "custom.en.crypto",
            "version": 3,
            "category": "custom",
            "severity": "medium",
            "type": "keywords",
            "params": {"keywords": ["bitcoin wallet"], "regexes": [r"\bdoge ?coin\b"]},
        }
    )
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    policy = Policy.load(path)
    assert policy.version == "school-42" and policy.digest != Policy.default().digest
    (hit,) = evaluate_text("send it to my Bitcoin  wallet", policy=policy)
    assert (hit.rule_id, hit.rule_version, hit.category) == ("custom.en.crypto", 3, "custom")
    assert evaluate_text("dogecoin", policy=policy)[0].rule_id == "custom.en.crypto"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rules"][0].update(category="spam"), "rules[0] (contact.phone).category"),
        (lambda d: d["rules"][0].update(severity="urgent"), "severity"),
        (lambda d: d["rules"][0].update(auto_action="mute"), "only allowed on critical rules"),
        (lambda d: d["rules"].append(copy.deepcopy(d["rules"][0])), "appears twice"),
        (
            lambda d: d["rules"][2]["params"]["groups"][0]["patterns"].append("(unclosed"),
            "not a valid regular expression",
        ),
        (lambda d: d["rules"][0]["params"].update(min_digits=12, max_digits=8), "min_digits"),
        (lambda d: d["rules"][0]["params"].update(colour="red"), "colour"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d["rules"][11]["params"]["schemes"][0].update(module="xx.nope"), "stdnum has no module"),
    ],
)
def test_invalid_policies_are_rejected_with_the_place_of_the_problem(change, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as err:
        _policy_with(change)
    assert message in err.value.detail
    # The engine knows nothing of HTTP: the 422 an admin gets is the service's (test_policy_api).
    assert not hasattr(err.value, "status")


def test_unreadable_policy_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        Policy.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PolicyError, match="not valid JSON"):
        Policy.load(bad)
    listy = tmp_path / "list.json"
    listy.write_text("[]")
    with pytest.raises(PolicyError, match="must be an object"):
        Policy.load(listy)
