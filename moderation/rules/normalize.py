"""Text normalisation for the policy rules: one form for English and Mandarin, mapped to the raw text.

The stages, in order: lower case and full-width to half-width (NFKC); Traditional to Simplified
Chinese (OpenCC ``t2s``: Whisper writes Mandarin in Traditional characters); Chinese numerals
to digits (phone dictation "一三八…", "幺" and "两", "零"/"〇", grouped "一五九，二二三三",
and compounds such as "四十五"); English number words to digits ("oh four one", "double two",
"triple five", "fifty six"). Every normalised character keeps the range of raw characters it
came from, so a match can be quoted and timed in the raw text. Policy patterns are written
against this form: lower case, Simplified characters, digits.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

UNITS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
REPEAT = {"double": 2, "triple": 3}
SCALE = {"hundred": 100, "thousand": 1000}
# "oh" and "o" are zero only inside a run of other numbers ("oh four one"), never alone ("oh, I see").
_WEAK_ZERO = {"oh", "o"}
_NUMBER_WORDS = set(UNITS) | set(TEENS) | set(TENS) | set(REPEAT) | set(SCALE)
# Words speech recognisers write for spoken digits ("oh four one to three"): digits only when
# numbers stand on both sides.
HOMOPHONES = {"to": "two", "too": "two", "for": "four"}
_STRONG_NUMBER = set(UNITS) - _WEAK_ZERO | set(TEENS) | set(TENS)

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|\s+|.", re.DOTALL)
# What may sit between two number words of one run: spaces, a comma, a hyphen.
_RUN_GAP = re.compile(r"^[\s,\-]*$")


@dataclass(frozen=True)
class NormText:
    """A normalised text and, for each of its characters, the raw ``[start, end)`` it came from."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def raw_range(self, start: int, end: int) -> tuple[int, int]:
        """The raw character range behind normalised ``[start, end)``."""
        if end <= start:
            end = start + 1
        start = max(0, min(start, len(self.text) - 1))
        end = max(start + 1, min(end, len(self.text)))
        return min(self.starts[start:end]), max(self.ends[start:end])


class _Builder:
    def __init__(self) -> None:
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, text: str, start: int, end: int) -> None:
        for ch in text:
            self.chars.append(ch)
            self.starts.append(start)
            self.ends.append(end)

    def build(self) -> NormText:
        return NormText("".join(self.chars), tuple(self.starts), tuple(self.ends))


def _fold(raw: str) -> NormText:
    """Lower case and NFKC (full-width digits and letters to ASCII), keeping the raw positions."""
    b = _Builder()
    for i, ch in enumerate(raw):
        folded = unicodedata.normalize("NFKC", ch).lower()
        folded = folded.replace("\u2019", "'").replace("\u2018", "'")
        b.add(folded, i, i + 1)
    return b.build()


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class _Converter(Protocol):
    def convert(self, text: str) -> str: ...


@lru_cache(maxsize=1)
def _t2s() -> _Converter:
    """OpenCC's Traditional-to-Simplified tables, loaded once per process."""
    from opencc import OpenCC

    converter: _Converter = OpenCC("t2s")
    return converter


def to_simplified(text: str) -> str:
    """``text`` with Traditional Chinese characters in Simplified (other scripts unchanged)."""
    return _t2s().convert(text) if _CJK.search(text) else text


def _simplify(nt: NormText) -> NormText:
    """Traditional to Simplified, keeping positions: phrase by phrase when OpenCC keeps the
    length (it nearly always does for t2s), else character by character."""
    if not _CJK.search(nt.text):
        return nt
    converted = to_simplified(nt.text)
    if len(converted) == len(nt.text):
        return NormText(converted, nt.starts, nt.ends)
    b = _Builder()
    for i, ch in enumerate(nt.text):
        b.add(to_simplified(ch), nt.starts[i], nt.ends[i])
    return b.build()


# Chinese numerals. "幺" is how a 1 is read out in phone numbers, "两" a 2, "〇"/"零" a 0.
ZH_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
ZH_UNITS = {"十": 10, "百": 100, "千": 1000}
ZH_SCALES = {"万": 10_000, "亿": 100_000_000}
_ZH_NUMERAL = re.compile("[" + "".join(ZH_DIGITS) + "".join(ZH_UNITS) + "".join(ZH_SCALES) + "]+")
# What may separate the groups of one dictated number: spaces and commas ("一五九，二二三三").
_ZH_GROUP_GAP = re.compile(r"^[\s,]{1,2}$")


def _zh_compound(word: str) -> int | None:
    """The value of a compound numeral ("四十五" 45, "八百四十万" 8400000, "一千零五" 1005), or
    None when the word is not one (digits side by side are dictation, not a compound)."""
    total = section = 0
    number: int | None = None
    prev = ""
    for ch in word:
        if ch in ZH_DIGITS:
            if prev in ZH_DIGITS and ZH_DIGITS[prev] != 0:
                return None  # "二三": read digit by digit
            number = ZH_DIGITS[ch]
        elif ch in ZH_UNITS:
            section += (number if number is not None else 1) * ZH_UNITS[ch]
            number = None
        else:
            total += (section + (number or 0)) * ZH_SCALES[ch] if (section or number) else ZH_SCALES[ch]
            section, number = 0, None
        prev = ch
    return total + section + (number or 0)


def _zh_numerals(nt: NormText) -> NormText:
    """Chinese numerals to digits. Digit-by-digit dictation becomes one digit per group
    ("一三八" -> "1 3 8", read as one number by the digit-run rules, and "一二三四五…" stays
    recognisable as counting); compounds become their value. A lone numeral inside a word
    ("一起", "两分钟", "第一") stays a character unless another number stands next to it."""
    text = nt.text
    words = list(_ZH_NUMERAL.finditer(text))
    if not words:
        return nt
    b = _Builder()
    pos = 0

    def copy(upto: int) -> None:
        for i in range(pos, upto):
            b.add(text[i], nt.starts[i], nt.ends[i])

    def emit(out: str, i: int, j: int) -> None:
        a, z = nt.raw_range(i, j)
        b.add(out, a, z)

    for k, m in enumerate(words):
        word, s, e = m.group(0), m.start(), m.end()
        if len(word) == 1:
            before = text[max(0, s - 3) : s]
            after = text[e : e + 3]
            near_number = (
                (k > 0 and _ZH_GROUP_GAP.match(text[words[k - 1].end() : s]))
                or (k + 1 < len(words) and _ZH_GROUP_GAP.match(text[e : words[k + 1].start()]))
                or re.search(r"\d[\s,]{0,2}$", before)
                or re.match(r"^[\s,]{0,2}\d", after)
            )
            if not near_number:
                continue
        copy(s)
        value = _zh_compound(word) if any(ch in ZH_UNITS or ch in ZH_SCALES for ch in word) else None
        if value is not None:
            emit(str(value), s, e)
        else:
            # Dictation: one group per digit; "十" among dictated digits is the 10 of counting.
            first = True
            for i, ch in enumerate(word, start=s):
                if ch in ZH_DIGITS:
                    out = str(ZH_DIGITS[ch])
                elif ch in ZH_UNITS and ZH_UNITS[ch] == 10:
                    out = "10"
                else:
                    b.add(ch, nt.starts[i], nt.ends[i])
                    continue
                if not first:
                    emit(" ", i, i + 1)
                emit(out, i, i + 1)
                first = False
        pos = e
    copy(len(text))
    return b.build()


def _is_word(tok: str) -> bool:
    return tok[:1].isalpha()


def _resolve_homophones(tokens: list[str]) -> list[str]:
    out = list(tokens)
    for k, tok in enumerate(tokens):
        if tok not in HOMOPHONES:
            continue
        prev_tok = next((tokens[i] for i in range(k - 1, -1, -1) if not tokens[i].isspace()), "")
        next_tok = next((tokens[i] for i in range(k + 1, len(tokens)) if not tokens[i].isspace()), "")
        if all(t.isdigit() or t in _STRONG_NUMBER for t in (prev_tok, next_tok)):
            out[k] = HOMOPHONES[tok]
    return out


def _mark_number_tokens(tokens: list[str]) -> list[bool]:
    """Which tokens belong to spoken-number runs (see ``_WEAK_ZERO`` for the "oh" rule)."""
    marked = [t in _NUMBER_WORDS or t in _WEAK_ZERO for t in tokens]
    # A run is a sequence of marked tokens joined by gaps only (spaces, commas, hyphens).
    i = 0
    n = len(tokens)
    while i < n:
        if not marked[i]:
            i += 1
            continue
        run = [i]
        j = i + 1
        while j < n:
            if marked[j]:
                run.append(j)
                j += 1
            elif _RUN_GAP.match(tokens[j]):
                j += 1
            else:
                break
        # Digits written as digits right before or after also make "oh" a zero: "4 oh 1".
        next_tok = next((tokens[k] for k in range(j, n) if not _RUN_GAP.match(tokens[k])), "")
        prev_tok = next((tokens[k] for k in range(i - 1, -1, -1) if not _RUN_GAP.match(tokens[k])), "")
        strong = any(tokens[k] not in _WEAK_ZERO for k in run) or next_tok.isdigit() or prev_tok.isdigit()
        if not strong:
            for k in run:
                marked[k] = False
        # "double"/"triple" and scales mean nothing alone ("a double room", "a hundred").
        words = [tokens[k] for k in run]
        if all(w in REPEAT or w in SCALE for w in words):
            for k in run:
                marked[k] = False
        i = j
    return marked


def _convert_run(words: list[str]) -> list[tuple[str, int, int]]:
    """Digit groups for one run of number words: (digits, first word index, last word index + 1).

    Digit-by-digit dictation stays digit by digit ("five five five" -> 5 5 5, later merged by the
    phone rules); compounds combine ("fifty six" -> 56, "three hundred and five" -> 305,
    "nineteen sixty nine" -> 19 69, which the digit-run merger reads as 1969).
    """
    groups: list[tuple[str, int, int]] = []
    i = 0
    n = len(words)
    while i < n:
        w = words[i]
        if w in REPEAT and i + 1 < n and words[i + 1] in UNITS:
            groups.append((str(UNITS[words[i + 1]]) * REPEAT[w], i, i + 2))
            i += 2
            continue
        if w in TENS:
            if i + 1 < n and words[i + 1] in UNITS and UNITS[words[i + 1]] > 0 and words[i + 1] not in _WEAK_ZERO:
                groups.append((str(TENS[w] + UNITS[words[i + 1]]), i, i + 2))
                i += 2
            else:
                groups.append((str(TENS[w]), i, i + 1))
                i += 1
            continue
        if w in TEENS:
            groups.append((str(TEENS[w]), i, i + 1))
            i += 1
            continue
        if w in UNITS:
            groups.append((str(UNITS[w]), i, i + 1))
            i += 1
            continue
        if w in SCALE and groups and groups[-1][2] == i and len(groups[-1][0]) <= 2 and groups[-1][0] != "0":
            digits, first, _ = groups.pop()
            value = int(digits) * SCALE[w]
            last = i + 1
            # "three hundred (and) five", "two thousand twenty four"
            # A lone digit after the scale is dictation ("one eight hundred five five five" is
            # 1 800 555...), unless "and" joins it ("three hundred and five").
            j = i + 1
            joined = j < n and words[j] == "and"
            if joined:
                j += 1
            rest = _convert_run(words[j:]) if j < n else []
            if rest and int(rest[0][0]) < SCALE[w] and rest[0][0][0] != "0" and (joined or len(rest[0][0]) > 1):
                value += int(rest[0][0])
                last = j + rest[0][2]
            groups.append((str(value), first, last))
            i = last
            continue
        i += 1  # a stray scale word or "and": skip it
    return groups


def normalise(raw: str) -> NormText:
    """Lower-cased, width-folded, Simplified text with spoken numbers as digits, mapped to ``raw``."""
    folded = _zh_numerals(_simplify(_fold(raw)))
    ftext = folded.text
    spans = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(ftext)]
    tokens = _resolve_homophones([t for t, _, _ in spans])
    marked = _mark_number_tokens(tokens)
    out = _Builder()

    def emit(text: str, fstart: int, fend: int) -> None:
        a, b = folded.raw_range(fstart, fend) if ftext else (0, 0)
        out.add(text, a, b)

    i = 0
    n = len(tokens)
    while i < n:
        if not marked[i]:
            tok, s, e = spans[i]
            if tok.isspace():
                emit(" ", s, e)
            else:
                for k, ch in enumerate(tok):
                    emit(ch, s + k, s + k + 1)
            i += 1
            continue
        # Collect one run: marked words joined by gaps; "and" may join "hundred and five".
        idx = [i]
        j = i + 1
        while j < n:
            if marked[j]:
                idx.append(j)
                j += 1
            elif _RUN_GAP.match(tokens[j]) or (
                tokens[j] == "and" and tokens[idx[-1]] in SCALE and j + 2 < n and marked[j + 2]
            ):
                if tokens[j] == "and":
                    idx.append(j)
                j += 1
            else:
                break
        # Trailing gaps belong to the text after the run.
        end_tok = idx[-1] + 1
        words = [tokens[k] for k in idx]
        groups = _convert_run(words)
        for g, (digits, first, last) in enumerate(groups):
            s = spans[idx[first]][1]
            e = spans[idx[last - 1]][2]
            if g:
                # Keep what separated the groups in speech: a comma stays a comma.
                prev_end = spans[idx[groups[g - 1][2] - 1]][2]
                gap = ftext[prev_end:s]
                emit(", " if "," in gap else " ", prev_end, s)
            emit(digits, s, e)
        i = end_tok
    return out.build()
