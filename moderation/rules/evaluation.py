"""Policy rules over what was said and shown: spans of text in, hits with evidence out.

``evaluate`` is pure and deterministic: the same spans, carry and policy give the same hits in
the same order, so a retried task produces the same flags (the domain keys them by slice id and
``Hit.fingerprint``).

Speech of one speaker is read across slice boundaries: the ``CarryState`` returned for a slice
holds the tail of its speech, and passing it with the next slice of the same speaker lets a
phone number cut by the boundary be caught in the slice where it completes. Screen text is read
frame by frame (a frame is complete in itself); the same text on several frames is one hit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from moderation.rules.detectors import DETECTORS, Doc, Match
from moderation.rules.policy import (
    CATEGORIES,
    SEVERITIES,
    Policy,
    PolicyError,
    Rule,
)

__all__ = [
    "CATEGORIES",
    "SEVERITIES",
    "CarryState",
    "Hit",
    "Policy",
    "PolicyError",
    "TextSpan",
    "evaluate",
    "evaluate_text",
]

SpanSource = Literal["speech", "screen"]
Box = tuple[tuple[float, float], ...]

DEFAULT_CARRY_SECONDS = 15.0
DEFAULT_CARRY_WORDS = 40
QUOTE_CONTEXT_WORDS = 4
# Matches of one rule closer than this (normalised characters) are merged into one hit.
MERGE_GAP_CHARS = 24
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class TextSpan:
    """A piece of text with its time in the slice: an ASR segment (or word), or one OCR line.

    ``start``/``end`` are seconds from the slice start; a screen span has ``frame_time`` (its
    frame's time), ``box`` (4 corner points) and the recogniser's ``score``.
    """

    text: str
    start: float
    end: float
    source: SpanSource = "speech"
    box: Box | None = None
    frame_time: float | None = None
    score: float = 1.0


@dataclass(frozen=True)
class Hit:
    """One rule matched: what, where (seconds within the slice), how sure, and the evidence."""

    category: str
    rule_id: str
    rule_version: int
    severity: str
    confidence: float
    start: float
    end: float
    quote: str
    source: SpanSource
    auto_action: str | None
    evidence: dict[str, Any]
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "severity": self.severity,
            "confidence": self.confidence,
            "start": self.start,
            "end": self.end,
            "quote": self.quote,
            "source": self.source,
            "auto_action": self.auto_action,
            "evidence": self.evidence,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class CarryState:
    """The tail of one speaker's speech, handed from one slice to the next.

    Span times are relative to the start of the *next* slice (so they are negative).
    ``reported`` lists (rule id, raw start, raw end) of matches already seen in the tail text,
    so a hit is not raised twice. JSON-friendly through ``to_dict``/``from_dict``.
    """

    spans: tuple[TextSpan, ...] = ()
    reported: tuple[tuple[str, int, int], ...] = ()
    policy_digest: str = ""

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.spans)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spans": [{"text": s.text, "start": s.start, "end": s.end} for s in self.spans],
            "reported": [list(r) for r in self.reported],
            "policy_digest": self.policy_digest,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CarryState | None:
        if not data:
            return None
        spans = tuple(TextSpan(str(s["text"]), float(s["start"]), float(s["end"])) for s in data.get("spans", []))
        reported = tuple((str(r[0]), int(r[1]), int(r[2])) for r in data.get("reported", []))
        return cls(spans, reported, str(data.get("policy_digest", "")))


@dataclass
class _Piece:
    span: TextSpan
    raw_start: int
    raw_end: int
    carried: bool


@dataclass
class _Joined:
    doc: Doc
    pieces: list[_Piece] = field(default_factory=list)

    @classmethod
    def of(cls, carried: Sequence[TextSpan], spans: Sequence[TextSpan], source: str = "speech") -> _Joined:
        # OCR boxes are separate pieces of a screen: numbers must not run from one into the next.
        sep = " | " if source == "screen" else " "
        parts: list[str] = []
        pieces: list[_Piece] = []
        pos = 0
        for flag, group in ((True, carried), (False, spans)):
            for s in group:
                text = " ".join(s.text.split())
                if not text:
                    continue
                if parts:
                    parts.append(sep)
                    pos += len(sep)
                pieces.append(_Piece(s, pos, pos + len(text), flag))
                parts.append(text)
                pos += len(text)
        return cls(Doc.build("".join(parts), source), pieces)

    def touched(self, raw_start: int, raw_end: int) -> list[_Piece]:
        return [p for p in self.pieces if p.raw_start < raw_end and raw_start < p.raw_end]

    @property
    def carry_end(self) -> int:
        """Raw offset where the current slice's text starts."""
        return max((p.raw_end for p in self.pieces if p.carried), default=-1)


def _resolve(matches: list[Match]) -> list[Match]:
    """One digit run is one thing (identity number > card > phone); within a rule, overlapping
    matches keep the surest, then the earliest and longest."""
    best_claim: dict[tuple[int, int], Match] = {}
    for m in matches:
        if m.claim is None:
            continue
        cur = best_claim.get(m.claim)
        if cur is None or (m.priority, m.confidence) > (cur.priority, cur.confidence):
            best_claim[m.claim] = m
    kept = [m for m in matches if m.claim is None or best_claim[m.claim] is m]
    by_rule: dict[str, list[Match]] = {}
    for m in sorted(kept, key=lambda m: (m.rule.id, -m.confidence, m.start, -(m.end - m.start), m.value)):
        chosen = by_rule.setdefault(m.rule.id, [])
        if any(c.start < m.end and m.start < c.end for c in chosen):
            continue
        chosen.append(m)
    merged: list[Match] = []
    for ms in by_rule.values():
        merged.extend(_merge_close(sorted(ms, key=lambda m: (m.start, m.end))))
    return sorted(merged, key=lambda m: (m.start, m.end, m.rule.id))


def _merge_close(matches: list[Match]) -> list[Match]:
    """Matches of one rule a few words apart are one incident ("pay me directly with PayPal,
    it's cheaper than the platform"): one flag with one quote, not three."""
    out: list[Match] = []
    for m in matches:
        prev = out[-1] if out else None
        if prev is not None and prev.claim is None and m.claim is None and m.start - prev.end <= MERGE_GAP_CHARS:
            values = [*prev.extras.get("values", [prev.value]), m.value]
            extras = {**m.extras, **prev.extras, "values": values}
            out[-1] = replace(
                prev, end=max(prev.end, m.end), confidence=max(prev.confidence, m.confidence), extras=extras
            )
        else:
            out.append(m)
    return out


def _quote(raw: str, a: int, b: int) -> str:
    """The matched text in [brackets] with a few words either side, spacing as spoken/shown."""
    before = [m.start() for m in _WORD.finditer(raw, 0, a)]
    after = [m.end() for m in _WORD.finditer(raw, b)]
    a0 = before[-QUOTE_CONTEXT_WORDS] if len(before) >= QUOTE_CONTEXT_WORDS else 0
    b1 = after[QUOTE_CONTEXT_WORDS - 1] if len(after) >= QUOTE_CONTEXT_WORDS else len(raw)
    lead = "\u2026" if a0 > 0 else ""
    trail = "\u2026" if b1 < len(raw) else ""
    return f"{lead}{raw[a0:a]}[{raw[a:b]}]{raw[b:b1]}{trail}".strip()


def _matches(policy: Policy, joined: _Joined, source: str, locale: str | None) -> list[Match]:
    found: list[Match] = []
    for rule in policy.rules:
        if rule.applies(source, locale):
            found.extend(DETECTORS[rule.spec.type](policy, rule, joined.doc))
    return _resolve(found)


LEAD_IN_SECONDS = 1.0


def _time_at(p: _Piece, raw: int) -> float:
    """When a character of a speech span was said, assuming even speech across the span."""
    width = max(1, p.raw_end - p.raw_start)
    frac = min(1.0, max(0.0, (raw - p.raw_start) / width))
    return p.span.start + frac * (p.span.end - p.span.start)


def _hit(rule: Rule, m: Match, joined: _Joined, source: SpanSource) -> tuple[Hit, int, int] | None:
    a, b = joined.doc.norm.raw_range(m.start, m.end)
    touched = joined.touched(a, b)
    if not touched:
        return None
    current = [p for p in touched if not p.carried]
    carried = [p for p in touched if p.carried]
    spec = rule.spec
    evidence: dict[str, Any] = {"value": m.value, **{k: v for k, v in m.extras.items() if v is not None}}
    confidence = m.confidence
    if current and source == "speech":
        # A speech span is a whole ASR segment (often several seconds); place the hit inside it
        # by its character position, with a little lead-in, so review can jump close to it.
        head = min(current, key=lambda p: p.raw_start)
        tail = max(current, key=lambda p: p.raw_end)
        start = max(head.span.start, _time_at(head, max(a, head.raw_start)) - LEAD_IN_SECONDS)
        end = min(tail.span.end, _time_at(tail, min(b, tail.raw_end)) + LEAD_IN_SECONDS)
        evidence["segment"] = [round(head.span.start, 3), round(tail.span.end, 3)]
    elif current:
        start = min(p.span.start for p in current)
        end = max(p.span.end for p in current)
    else:
        start = end = 0.0
    if carried:
        # Started in the previous slice of this speaker; flagged here, where it completes.
        evidence["continues_previous_slice"] = True
        evidence["previous_slice_from"] = round(min(p.span.start for p in carried), 3)
    if source == "screen":
        first = touched[0].span
        confidence *= min(p.span.score for p in touched)
        evidence["frame_time"] = first.frame_time
        evidence["boxes"] = [[list(pt) for pt in p.span.box] for p in touched if p.span.box]
        evidence["ocr_score"] = round(min(p.span.score for p in touched), 4)
    hit = Hit(
        category=spec.category,
        rule_id=spec.id,
        rule_version=spec.version,
        severity=spec.severity,
        confidence=round(max(0.0, min(1.0, confidence)), 3),
        start=round(max(0.0, start), 3),
        end=round(max(0.0, end), 3),
        quote=_quote(joined.doc.raw, a, b),
        source=source,
        auto_action=spec.auto_action,
        evidence=evidence,
        fingerprint="",
    )
    return hit, a, b


def _fingerprints(hits: list[Hit]) -> list[Hit]:
    seen: dict[tuple[str, str, str], int] = {}
    out = []
    for h in hits:
        key = (h.rule_id, h.source, str(h.evidence.get("value", "")).lower())
        n = seen.get(key, 0)
        seen[key] = n + 1
        digest = hashlib.sha256("\x1f".join((*key, str(n))).encode()).hexdigest()[:16]
        out.append(replace(h, fingerprint=digest))
    return out


def _speech_hits(
    policy: Policy, spans: list[TextSpan], carry: CarryState | None, locale: str | None
) -> tuple[list[Hit], _Joined, list[tuple[str, int, int]]]:
    carried = list(carry.spans) if carry else []
    joined = _Joined.of(carried, spans)
    reported = list(carry.reported) if carry else []
    hits: list[Hit] = []
    seen_ranges: list[tuple[str, int, int]] = []
    for m in _matches(policy, joined, "speech", locale):
        made = _hit(m.rule, m, joined, "speech")
        if made is None:
            continue
        hit, a, b = made
        seen_ranges.append((m.rule.id, a, b))
        if a < joined.carry_end and any(r == m.rule.id and ra < b and a < rb for r, ra, rb in reported):
            continue  # already raised in the previous slice
        hits.append(hit)
    return hits, joined, seen_ranges


def _screen_hits(policy: Policy, spans: list[TextSpan], locale: str | None) -> list[Hit]:
    frames: dict[float, list[TextSpan]] = {}
    for s in spans:
        frames.setdefault(s.frame_time if s.frame_time is not None else s.start, []).append(s)
    first_seen: dict[tuple[str, str], Hit] = {}
    order: list[tuple[str, str]] = []
    for t in sorted(frames):
        joined = _Joined.of([], frames[t], "screen")
        for m in _matches(policy, joined, "screen", locale):
            made = _hit(m.rule, m, joined, "screen")
            if made is None:
                continue
            hit = made[0]
            key = (hit.rule_id, str(hit.evidence.get("value", "")).lower())
            if key in first_seen:
                first_seen[key].evidence.setdefault("also_in_frames", []).append(t)
                continue
            first_seen[key] = hit
            order.append(key)
    return [first_seen[k] for k in order]


def _next_carry(
    joined: _Joined,
    seen: list[tuple[str, int, int]],
    duration: float,
    digest: str,
    carry_seconds: float,
    carry_words: int,
) -> CarryState:
    pieces = [p for p in joined.pieces if p.span.end - duration > -carry_seconds]
    words = 0
    kept: list[_Piece] = []
    for p in reversed(pieces):
        words += len(p.span.text.split())
        if kept and words > carry_words:
            break
        kept.append(p)
    kept.reverse()
    if not kept:
        return CarryState(policy_digest=digest)
    offset = kept[0].raw_start
    spans = tuple(
        TextSpan(" ".join(p.span.text.split()), round(p.span.start - duration, 3), round(p.span.end - duration, 3))
        for p in kept
    )
    reported = tuple((rid, max(0, a - offset), b - offset) for rid, a, b in seen if b > offset)
    return CarryState(spans, reported, digest)


def evaluate(
    spans: Sequence[TextSpan],
    carry: CarryState | None = None,
    *,
    policy: Policy | None = None,
    locale: str | None = None,
    duration: float | None = None,
    carry_seconds: float = DEFAULT_CARRY_SECONDS,
    carry_words: int = DEFAULT_CARRY_WORDS,
) -> tuple[list[Hit], CarryState]:
    """Hits for one slice's spans, and the carry for the same speaker's next slice.

    ``duration`` is the slice length in seconds (defaults to the last span's end); it places
    the carried tail before the next slice. ``locale`` limits rules to those for that locale
    (None: all rules). A carry made under another policy version is ignored.
    """
    pol = policy or Policy.default()
    if carry is not None and carry.policy_digest and carry.policy_digest != pol.digest:
        carry = None
    speech = sorted((s for s in spans if s.source == "speech"), key=lambda s: (s.start, s.end))
    screen = sorted((s for s in spans if s.source == "screen"), key=lambda s: (s.frame_time or s.start, s.start))
    hits, joined, seen = _speech_hits(pol, speech, carry, locale)
    hits += _screen_hits(pol, screen, locale)
    hits.sort(key=lambda h: (h.start, h.end, h.rule_id, h.source, h.quote))
    slice_len = duration if duration is not None else max((s.end for s in speech), default=0.0)
    next_carry = _next_carry(joined, seen, slice_len, pol.digest, carry_seconds, carry_words)
    return _fingerprints(hits), next_carry


def evaluate_text(text: str, *, policy: Policy | None = None, source: SpanSource = "speech") -> list[Hit]:
    """Hits for one piece of text (tests, the CLI's text mode, admins trying a policy)."""
    span = TextSpan(text, 0.0, 0.0, source=source, frame_time=0.0 if source == "screen" else None)
    return evaluate([span], policy=policy)[0]


def hits_summary(hits: Sequence[Hit]) -> dict[str, int]:
    """Hit counts by category (every category present, zero included)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for h in hits:
        counts[h.category] += 1
    return counts
