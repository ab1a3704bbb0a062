"""The detectors behind each rule type: they find matches in one normalised text.

Each detector takes a rule and a ``Doc`` (raw text, its normalised form, digit runs) and
returns ``Match``es in normalised coordinates; ``rules.evaluate`` turns them into hits with
times, quotes and evidence. Digit runs are shared: one run is one phone number, identity
number or card number, never several (``claim`` + ``priority`` settle that).
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import phonenumbers
from stdnum import luhn

from moderation.rules.normalize import NormText, normalise
from moderation.rules.policy import (
    BankCardParams,
    EmailParams,
    KeywordsParams,
    NationalIdParams,
    PhoneParams,
    PhrasesParams,
    Policy,
    ProfanityParams,
    Rule,
    compile_pattern,
)

_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"\S+")
# Between two digit groups of one number: spaces, hyphens, dots, slashes, brackets (at most 3).
_GAP = re.compile(r"^[\s\-./()]{0,3}$")
# A comma joins groups only in digit-by-digit dictation ("5, 5, 5"), not lists ("1914, 1918").
_COMMA_GAP = re.compile(r"^\s?,\s?$")
_LETTER_BEFORE = re.compile(r"[a-z_]$")
_LETTER_AFTER = re.compile(r"^[a-z_]")
_PLUS_BEFORE = re.compile(r"(?:\+|\bplus\s)\s*$")
_TRAILING_X = re.compile(r"^\s?[,\-]?\s?x\b")
_ASCII_WORD = re.compile(r"^[\x00-\x7f]+$")

PRIORITY_PHONE, PRIORITY_CARD, PRIORITY_ID = 1, 2, 3
_NOT_A_LOCAL_PART = frozenset(
    {"email", "e-mail", "mail", "me", "is", "address", "it", "us", "you", "them", "him", "her"}
)


@dataclass(frozen=True)
class DigitRun:
    """Digits that belong together ("138 1234 5678", "5, 5, 5, 1, 2"), in normalised offsets."""

    digits: str
    start: int
    end: int
    written: bool  # typed or shown as digits, not spoken as number words
    plus: bool  # "+86 ..." or "plus 86 ..."
    quantity: bool = False  # thousands separators ("1,400,000"): an amount, never a phone or card
    groups: tuple[str, ...] = ()

    @property
    def counting(self) -> bool:
        """ "1, 2, 3, 4, 5, 6, 7, 8, 9, 10": a class counting, not a number to dial."""
        if len(self.groups) < 5:
            return False
        values = [int(g) for g in self.groups]
        steps = {b - a for a, b in itertools.pairwise(values)}
        return steps in ({1}, {-1})

    @property
    def identifier(self) -> bool:
        """Could be a phone, card or identity number (not an amount, not counting)."""
        return not self.quantity and not self.counting


@dataclass
class Doc:
    """One text the rules read: the raw joined text, its normalised form and its digit runs."""

    raw: str
    norm: NormText
    source: str = "speech"
    runs: list[DigitRun] = field(default_factory=list)

    @classmethod
    def build(cls, raw: str, source: str = "speech") -> Doc:
        norm = normalise(raw)
        doc = cls(raw, norm, source)
        doc.runs = _digit_runs(doc)
        return doc

    @property
    def text(self) -> str:
        return self.norm.text


@dataclass(frozen=True)
class Match:
    """A rule's match in normalised offsets, before it becomes a hit."""

    rule: Rule
    start: int
    end: int
    confidence: float
    value: str
    extras: dict[str, Any] = field(default_factory=dict)
    claim: tuple[int, int] | None = None  # the digit run it uses up
    priority: int = 0


def _digit_runs(doc: Doc) -> list[DigitRun]:
    text = doc.text
    groups = [(m.start(), m.end()) for m in _DIGITS.finditer(text)]
    runs: list[DigitRun] = []
    current: list[tuple[int, int]] = []
    quantity = False

    def flush() -> None:
        nonlocal quantity
        if not current:
            return
        s, e = current[0][0], current[-1][1]
        digits = "".join(text[a:b] for a, b in current)
        ra, rb = doc.norm.raw_range(s, e)
        written = not re.search(r"[^\W\d_]", doc.raw[ra:rb])
        plus = bool(_PLUS_BEFORE.search(text[max(0, s - 6) : s]))
        groups = tuple(text[a:b] for a, b in current)
        runs.append(DigitRun(digits, s, e, written, plus, quantity, groups))
        current.clear()
        quantity = False

    for a, b in groups:
        # Digits glued to letters belong to a word (a handle, "mp3", "covid19"), not a number.
        if _LETTER_BEFORE.search(text[max(0, a - 1) : a]) or (
            _LETTER_AFTER.match(text[b : b + 1]) and not _TRAILING_X.match(text[b:])
        ):
            flush()
            continue
        if current:
            pa, pb = current[-1]
            gap = text[pb:a]
            # A comma joins dictated groups ("22, 555, 891", "138, 1234, 5678") but not a list
            # of long numbers ("1914, 1918").
            joined = _GAP.match(gap) or (_COMMA_GAP.match(gap) and (min(pb - pa, b - a) <= 3 or len(current) >= 2))
            if not joined:
                flush()
            elif gap == "," and b - a == 3 and (pb - pa <= 3):
                quantity = True
        current.append((a, b))
    flush()
    return runs


def _window(text: str, start: int, end: int, words: int) -> str:
    """``words`` words before ``start`` and after ``end``, the match itself left out."""
    before = list(_WORD.finditer(text, 0, start))
    b0 = before[-words].start() if len(before) >= words else 0
    after = list(_WORD.finditer(text, end))
    a1 = after[words - 1].end() if len(after) >= words else len(text)
    return text[b0:start] + " \u2026 " + text[end:a1]


def _find_cue(patterns: list[re.Pattern[str]], text: str, start: int, end: int, words: int) -> str | None:
    if not patterns:
        return None
    around = _window(text, start, end, words)
    for p in patterns:
        m = p.search(around)
        if m:
            return m.group(0).strip()
    return None


def _compiled(policy: Policy, rule: Rule, key: str, build: Callable[[], Any]) -> Any:
    ck = f"{rule.id}:{key}"
    if ck not in policy.cache:
        policy.cache[ck] = build()
    return policy.cache[ck]


def _patterns(policy: Policy, rule: Rule, key: str, values: list[str]) -> list[re.Pattern[str]]:
    return _compiled(policy, rule, key, lambda: [compile_pattern(v) for v in values])  # type: ignore[no-any-return]


# --- digit runs: phone, identity numbers, cards ------------------------------------------


def _phone_valid(digits: str, plus: bool, regions: list[str]) -> bool:
    candidates = [("+" + digits, None)] if plus else [(digits, r) for r in regions]
    for number, region in candidates:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def detect_phone(policy: Policy, rule: Rule, doc: Doc) -> list[Match]:
    p: PhoneParams = rule.params
    cues = _patterns(policy, rule, "cues", p.cues)
    weak = _patterns(policy, rule, "weak", p.weak_cues)
    alone = _patterns(policy, rule, "alone", p.alone_patterns)
    out = []
    for run in doc.runs:
        if not run.identifier:
            continue
        n = len(run.digits)
        if not p.min_digits <= n <= p.max_digits or doc.text[run.end : run.end + 2].lstrip().startswith("@"):
            continue
        valid = _phone_valid(run.digits, run.plus, p.regions)
        cue = _find_cue(cues, doc.text, run.start, run.end, p.window_words)
        if cue:
            conf = min(1.0, p.confidence + (p.valid_bonus if valid else 0.0))
        elif valid and (weak_cue := _find_cue(weak, doc.text, run.start, run.end, p.window_words)):
            cue, conf = weak_cue, p.confidence - 0.1
        elif valid and any(a.fullmatch(run.digits) for a in alone):
            conf = p.alone_confidence
        elif valid and doc.source == "screen" and run.written and (run.plus or n >= 10):
            # Shown like a real number with no words around it. Not for speech: recognisers
            # write digits for any spoken number, counting included.
            conf = p.confidence - 0.25
        else:
            continue
        extras = {"digits": n, "valid_number": valid, "cue": cue}
        out.append(
            Match(rule, run.start, run.end, round(conf, 3), run.digits, extras, (run.start, run.end), PRIORITY_PHONE)
        )
    return out


def detect_national_id(policy: Policy, rule: Rule, doc: Doc) -> list[Match]:
    p: NationalIdParams = rule.params
    cues = _patterns(policy, rule, "cues", p.cues)
    out = []
    for run in doc.runs:
        if not run.identifier:
            continue
        tail = _TRAILING_X.match(doc.text[run.end :])
        for scheme in p.schemes:
            candidates = [(run.digits, run.end)]
            if scheme.trailing_x and tail:
                candidates.insert(0, (run.digits + "X", run.end + tail.end()))
            mod = importlib.import_module(f"stdnum.{scheme.module}")
            scheme_cues = _patterns(policy, rule, f"cues:{scheme.module}", scheme.cues) if scheme.cues else cues
            for number, end in candidates:
                if len(number) not in scheme.lengths or not mod.is_valid(number):
                    continue
                cue = _find_cue(scheme_cues, doc.text, run.start, end, p.window_words)
                if scheme.needs_cue and not cue:
                    continue
                extras = {"scheme": scheme.label or scheme.module, "cue": cue}
                out.append(Match(rule, run.start, end, p.confidence, number, extras, (run.start, run.end), PRIORITY_ID))
                break
            else:
                continue
            break
    return out


# Issuer prefixes and lengths of the card networks (ISO/IEC 7812 IIN ranges in public use).
_CARD_NETWORKS: list[tuple[str, Callable[[str], bool], tuple[int, ...]]] = [
    ("visa", lambda d: d.startswith("4"), (13, 16, 19)),
    ("mastercard", lambda d: 51 <= int(d[:2]) <= 55 or 2221 <= int(d[:4]) <= 2720, (16,)),
    ("amex", lambda d: d[:2] in ("34", "37"), (15,)),
    ("unionpay", lambda d: d.startswith("62"), (16, 17, 18, 19)),
    ("discover", lambda d: d.startswith(("6011", "65")) or 644 <= int(d[:3]) <= 649, (16, 19)),
    ("jcb", lambda d: 3528 <= int(d[:4]) <= 3589, (16, 17, 18, 19)),
    ("diners", lambda d: d[:2] in ("36", "38", "39") or 300 <= int(d[:3]) <= 305, (14, 16, 19)),
    (
        "maestro",
        lambda d: d[:4] in ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"),
        tuple(range(12, 20)),
    ),
]


def card_network(digits: str) -> str | None:
    """The card network whose prefix and length fit ``digits`` (Luhn not checked here)."""
    if not 12 <= len(digits) <= 19:
        return None
    for name, prefix, lengths in _CARD_NETWORKS:
        if len(digits) in lengths and prefix(digits):
            return name
    return None


def detect_bank_card(policy: Policy, rule: Rule, doc: Doc) -> list[Match]:
    p: BankCardParams = rule.params
    cues = _patterns(policy, rule, "cues", p.cues)
    out = []
    for run in doc.runs:
        network = card_network(run.digits)
        if not run.identifier or network is None or not luhn.is_valid(run.digits):
            continue
        cue = _find_cue(cues, doc.text, run.start, run.end, p.window_words)
        conf = p.cue_confidence if cue else p.confidence
        # Keep only the last four digits in the value: the quote already carries the evidence.
        extras = {"network": network, "cue": cue, "last4": run.digits[-4:]}
        out.append(Match(rule, run.start, run.end, conf, run.digits, extras, (run.start, run.end), PRIORITY_CARD))
    return out


# --- words and phrases ---------------------------------------------------------------------


def _email_regexes(tlds: list[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    tld = "|".join(re.escape(t.lower().lstrip(".")) for t in sorted(tlds, key=len, reverse=True))
    sep = r"(?:\s*(?:\.|\bdot\b|_|\bunderscore\b|-|\bdash\b|\bhyphen\b)\s*)"
    local = rf"[a-z0-9][a-z0-9_+\-]*(?:{sep}[a-z0-9][a-z0-9_+\-]*){{0,3}}"
    domain = r"[a-z0-9][a-z0-9\-]*(?:{DOT}[a-z0-9][a-z0-9\-]*){0,2}?"
    full = compile_pattern(
        rf"(?<![a-z0-9_.\-])(?P<local>{local})(?P<at>{{AT}})(?P<domain>{domain}){{DOT}}(?P<tld>{tld})\b"
    )
    loose = compile_pattern(rf"(?<![a-z0-9_.\-])[a-z0-9][a-z0-9_\-]*(?:{{DOT}}[a-z0-9\-]+)*?{{DOT}}(?:{tld})\b")
    return full, loose


def _canonical_email(text: str) -> str:
    t = re.sub(r"\s*\bdot\b\s*", ".", text)
    t = re.sub(r"\s*\bat\b\s*", "@", t)
    t = re.sub(r"\s*\bunderscore\b\s*", "_", t)
    t = re.sub(r"\s*\b(?:dash|hyphen)\b\s*", "-", t)
    return re.sub(r"\s+", "", t)


def detect_email(policy: Policy, rule: Rule, doc: Doc) -> list[Match]:
    p: EmailParams = rule.params
    full, loose = _compiled(policy, rule, "email", lambda: _email_regexes(p.tlds))
    cues = _patterns(policy, rule, "cues", p.cues)
    text = doc.text
    out: list[Match] = []
    taken: list[tuple[int, int]] = []
    for m in full.finditer(text):
        spoken_at = "@" not in m.group("at")
        local = m.group("local")
        cue = _find_cue(cues, text, m.start(), m.end(), p.window_words)
        # "look at google dot com" is a website, not an address: a spoken "at" needs a dotted or
        # numbered local part, or an e-mail cue nearby.
        if spoken_at and not cue and not re.search(r"[\d_.\-]|\bdot\b|\bunderscore\b", local):
            continue
        taken.append((m.start(), m.end()))
        if local.strip() in _NOT_A_LOCAL_PART:
            # "email at jlee.com": the address is garbled, the cue word is not its local part.
            value = _canonical_email(m.group("domain") + "." + m.group("tld"))
            out.append(Match(rule, m.start(), m.end(), p.cue_confidence, value, {"cue": cue, "partial": True}))
            continue
        out.append(Match(rule, m.start(), m.end(), p.confidence, _canonical_email(m.group(0)), {"cue": cue}))
    if cues:
        for m in loose.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            cue = _find_cue(cues, text, m.start(), m.end(), p.window_words)
            if cue:
                value = _canonical_email(m.group(0))
                out.append(Match(rule, m.start(), m.end(), p.cue_confidence, value, {"cue": cue, "partial": True}))
    return out


def detect_phrases(policy: Policy, rule: Rule, doc: Doc) -> list[Match]:
    p: PhrasesParams = rule.params
    out = []
    for gi, group in enumerate(p.groups):
        pats = _patterns(policy, rule, f"g{gi}", group.patterns)
        near = _patterns(policy, rule, f"n{gi}", group.near)
        for pat in pats:
            for m in pat.finditer(doc.text):
                if m.end() == m.start():
                    continue
                cue = None
                if near:
                    cue = _find_cue(near, doc.text, m.start(), m.end(), group.window_words)
                    if cue is None:
                        continue
                value = re.sub(r"\s+", " ", m.group(0)).strip()
                out.append(Match(rule, m.start(), m.end(), group.confidence, value, {"cue": cue} if cue else {}))
    return out


def _keyword_pattern(word: str) -> str:
    norm = normalise(word.strip()).text
    body = r"\s+".join(re.escape(part) for part in norm.split())
    if _ASCII_WORD.match(norm):
        return rf"(?<![a-z0-9]){body}(?![a-z0-9])"
    return body  # CJK and other scripts have no spaces between words


def detect_keywords(policy: Policy, rule: Rule, doc: Doc) -> list[Match]:
    p: KeywordsParams = rule.params

    def build() -> list[re.Pattern[str]]:
        pats = [re.compile(_keyword_pattern(k), re.IGNORECASE) for k in p.keywords]
        return pats + [compile_pattern(r) for r in p.regexes]

    out = []
    for pat in _compiled(policy, rule, "kw", build):
        for m in pat.finditer(doc.text):
            if m.end() > m.start():
                out.append(Match(rule, m.start(), m.end(), p.confidence, m.group(0)))
    return out


@lru_cache(maxsize=1)
def builtin_profanity() -> tuple[str, ...]:
    """better-profanity's shipped word list (read from its package data, not its API)."""
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text(encoding="utf-8")
    return tuple(sorted({w.strip().lower() for w in text.splitlines() if w.strip()}))


def _profanity_regex(p: ProfanityParams) -> re.Pattern[str] | None:
    allow = {a.strip().lower() for a in p.allow}
    words = set(builtin_profanity()) if p.builtin else set()
    words = (words | {w.strip().lower() for w in p.extra if w.strip()}) - allow
    if not words:
        return None
    alts = []
    for w in sorted(words, key=lambda x: (-len(x), x)):
        w = w.rstrip("*")  # the list marks a few stems with "*"
        alts.append(r"[\s\-]*".join(re.escape(part) for part in w.split()))
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + r")(?![a-z0-9])", re.IGNORECASE)


def detect_profanity(policy: Policy, rule: Rule, doc: Doc) -> list[Match]:
    p: ProfanityParams = rule.params
    rx = _compiled(policy, rule, "words", lambda: _profanity_regex(p))
    if rx is None:
        return []
    return [Match(rule, m.start(), m.end(), p.confidence, m.group(0).lower()) for m in rx.finditer(doc.text)]


DETECTORS: dict[str, Callable[[Policy, Rule, Doc], list[Match]]] = {
    "phone": detect_phone,
    "email": detect_email,
    "phrases": detect_phrases,
    "keywords": detect_keywords,
    "profanity": detect_profanity,
    "national_id": detect_national_id,
    "bank_card": detect_bank_card,
}

__all__ = ["DETECTORS", "Doc", "Match", "card_network"]
