"""One speaker's slices heard as one continuous stream: the audio carried across a slice boundary.

The recorder cuts a speaker's microphone every few seconds, wherever the speaker is; a sentence
cut in two is heard badly by both halves ("my number is one three" | "eight five five ..."), and
text carried between slices cannot repair what the recogniser never heard whole. So each slice is
transcribed together with the **tail** of the same speaker's previous slice: the speech since the
last pause (Silero VAD), when the previous slice ended while the speaker was still talking, at
most ``MAX_CARRY_SECONDS``. Whisper pads every window to 30 s, so the carried seconds cost little.

Times: the transcript of a slice is in the slice's own time; the carried part has negative times
(``carried_seconds`` before the slice start). Deduplication, at the rules: the text carried from
the previous slice is trimmed to what lies before the carried audio (that audio is heard again,
whole); a hit that lies wholly in the carried audio was the previous slice's to raise, and a hit
that crosses the boundary with the same rule and value as a hit of the previous slice is that
hit. A hit that crosses the boundary is raised here, where it completes, with the previous slice
named in its evidence: its time range spans the two slices.

Pure computation (no database, no files); blocking; the pipeline and ``bench/pipeline.py`` share it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from moderation.asr import SAMPLE_RATE, AsrOptions, Segment, Transcript, transcribe
from moderation.rules import CarryState, Hit, Policy, TextSpan, evaluate

# The carried tail: speech the previous slice ended in, back to its last pause of PAUSE_SECONDS.
MAX_CARRY_SECONDS = 10.0
PAUSE_SECONDS = 1.0
# The previous slice "ended while talking" if its last speech reaches this close to its end.
END_SLACK_SECONDS = 0.6
# Consecutive slices of one speaker are back to back (the recorder rolls over); a gap means the
# microphone was off in between, and nothing runs on across it.
MAX_GAP_SECONDS = 1.0


@dataclass(frozen=True)
class StreamTranscript:
    """A slice's transcript heard with the carried tail; ``carried_seconds`` of it came before."""

    transcript: Transcript
    carried_seconds: float = 0.0


def speech_tail(previous: np.ndarray) -> np.ndarray:
    """The end of ``previous`` (16 kHz mono) the speaker was still saying when it was cut: from
    its last pause to its end, at most ``MAX_CARRY_SECONDS``; empty when it ends in silence."""
    if previous.size == 0 or not np.any(previous):
        return previous[:0]
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(min_silence_duration_ms=int(PAUSE_SECONDS * 1000), speech_pad_ms=200)
    chunks = get_speech_timestamps(np.ascontiguousarray(previous, dtype=np.float32), opts)
    n = len(previous)
    if not chunks or chunks[-1]["end"] < n - int(END_SLACK_SECONDS * SAMPLE_RATE):
        return previous[:0]
    start = max(int(chunks[-1]["start"]), n - int(MAX_CARRY_SECONDS * SAMPLE_RATE))
    return previous[start:]


def _shift_segment(s: Segment, dt: float) -> Segment:
    words = tuple(replace(w, start=round(w.start + dt, 3), end=round(w.end + dt, 3)) for w in s.words)
    return replace(s, start=round(s.start + dt, 3), end=round(s.end + dt, 3), words=words)


def transcribe_continuing(
    audio: np.ndarray,
    previous: np.ndarray | None = None,
    *,
    model: str | os.PathLike[str] | None = None,
    cpu_threads: int = 1,
    options: AsrOptions | None = None,
    models_dir: Path | None = None,
) -> StreamTranscript:
    """``audio`` transcribed after the tail of ``previous`` (the same speaker's slice just before)."""
    tail = speech_tail(previous) if previous is not None else audio[:0]
    carried = round(len(tail) / SAMPLE_RATE, 3)
    joined = np.concatenate([tail, audio]) if carried else audio
    heard = transcribe(joined, model=model, cpu_threads=cpu_threads, options=options, models_dir=models_dir)
    if not carried:
        return StreamTranscript(heard)
    shifted = [_shift_segment(s, -carried) for s in heard.segments]
    return StreamTranscript(replace(heard, duration=round(len(audio) / SAMPLE_RATE, 3), segments=shifted), carried)


def own_text(segments: Iterable[Segment]) -> str:
    """The text of the slice itself: segments that end after its start."""
    return " ".join(s.text for s in segments if s.end > 0).strip()


def _trim_carry(carry: CarryState | None, carried: float) -> CarryState | None:
    """The previous slice's text before the carried audio, in the joined audio's time."""
    if carry is None or not carried:
        return carry
    kept = tuple(TextSpan(s.text, round(s.start + carried, 3), round(s.end + carried, 3))
                 for s in carry.spans if s.end <= -carried + 0.05)
    length = len(" ".join(s.text for s in kept))
    reported = tuple(r for r in carry.reported if r[2] <= length)
    return CarryState(kept, reported, carry.policy_digest)


def _value(hit: Hit) -> str:
    return str(hit.evidence.get("value", "")).lower()


def evaluate_continuing(
    spans: Sequence[TextSpan],
    carried_seconds: float,
    carry: CarryState | None,
    *,
    policy: Policy,
    duration: float,
    previous_hits: Sequence[tuple[str, str]] = (),
    previous_slice: str | None = None,
) -> tuple[list[Hit], CarryState]:
    """The policy over a slice heard with its carried tail (``spans`` in slice time, the carried
    part negative). ``previous_hits``: (rule id, value) of the previous slice's hits. Returns the
    slice's own hits (times in the slice; ``evidence.previous_slice_from`` < 0 for those that
    began in the previous slice) and the carry for the next slice."""
    dt = carried_seconds
    if not dt:
        return evaluate(list(spans), carry, policy=policy, duration=duration)
    joined = [replace(s, start=round(s.start + dt, 3), end=round(s.end + dt, 3)) for s in spans]
    hits, next_carry = evaluate(joined, _trim_carry(carry, dt), policy=policy, duration=duration + dt)
    seen = set(previous_hits)
    own: list[Hit] = []
    for h in hits:
        start, end = round(h.start - dt, 3), round(h.end - dt, 3)
        evidence: dict[str, Any] = dict(h.evidence)
        if "segment" in evidence:
            evidence["segment"] = [round(float(t) - dt, 3) for t in evidence["segment"]]
        began_before = start < 0 or "previous_slice_from" in evidence
        if end <= 0 or (began_before and (h.rule_id, _value(h)) in seen):
            continue  # heard whole by the previous slice, or that slice's hit again
        if began_before:
            evidence["continues_previous_slice"] = True
            text_from = h.evidence.get("previous_slice_from")
            earliest = min(start, float(text_from) - dt) if text_from is not None else start
            evidence["previous_slice_from"] = round(earliest, 3)
            if previous_slice is not None:
                evidence["previous_slice_id"] = previous_slice
        own.append(replace(h, start=max(0.0, start), end=max(0.0, end), evidence=evidence))
    return own, next_carry
