"""Throughput of the moderation speech pipeline on a synthetic class recording.

Builds a >= 10-minute class (espeak-ng voices en-us, en-gb, en+f3, en+m3 taking turns, with
pauses, a few policy violations among ordinary lesson talk), mixes it into one 16 kHz wav, then
in the same run measures:

- ``pipeline, 10 s slices``: what production does: each 10-second slice goes through
  VAD + faster-whisper + policy rules, heard with the speech its previous slice ended in
  (``moderation.speech_stream``); "before": the same without the carried speech (text carry only);
- ``pipeline, whole file``: ``moderation.analyze.analyze_file`` on the whole recording;
- ``baseline``: plain ``WhisperModel.transcribe`` on the same audio, no VAD, same model and threads.

Prints a markdown table (audio seconds per wall second; higher is better) plus per-slice latency.
Usage: ``.venv/bin/python bench/pipeline.py [--minutes 10] [--threads 1] [--models base,tiny.en]
[--skip-before] [--skip-whole]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moderation import asr
from moderation.analyze import analyze_file
from moderation.media_prep import SAMPLE_RATE, ffmpeg_exe, load_audio_16k
from moderation.rules import CarryState, Hit, Policy, TextSpan, evaluate
from moderation.speech_stream import evaluate_continuing, transcribe_continuing

OUT = Path(__file__).resolve().parent / "out"
VOICES = ["en-us", "en-gb", "en+f3", "en+m3"]
LESSON = [
    "Good morning everyone, let's open the book to page forty two.",
    "Today we will practise the past tense with some short stories.",
    "Read the first paragraph aloud, slowly and clearly please.",
    "Very good. Now, what did the girl do after school yesterday?",
    "She walked to the park and played football with her friends.",
    "Seven times eight is fifty six, and nine times nine is eighty one.",
    "The meeting is at three thirty, do not be late.",
    "In nineteen sixty nine the first men landed on the moon.",
    "Can you spell the word beautiful for me?",
    "Let's count together: one, two, three, four, five, six.",
    "Your homework is exercises four to seven on page one hundred and thirty one.",
    "Excellent pronunciation, you are improving every week.",
    "Please submit your homework on the platform before Friday.",
    "Any questions before we move on to the next exercise?",
    "The price is twenty dollars on the platform.",
    "Draw a line from point A to point B, then measure it.",
]
VIOLATIONS = [
    "Call me on oh four one two, three four five, six seven eight after class.",
    "You can pay me directly with PayPal, it is cheaper than the platform.",
    "Send me an email at j dot lee at yahoo dot com.",
    "You are so stupid, shut up you idiot.",
    "We can continue our lessons outside the platform, it is easier.",
]


def _espeak(text: str, voice: str) -> np.ndarray:
    raw = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], check=True, capture_output=True
    ).stdout
    pcm = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", "-", "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"],
        input=raw,
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


def build_recording(minutes: float, seed: int = 7) -> tuple[Path, int]:
    """A class of ``minutes`` minutes as a 16 kHz wav (cached in bench/out); returns (path, violations)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"class-{minutes:g}min-{seed}.wav"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, int(json.loads(meta.read_text())["violations"])
    rng = random.Random(seed)
    target = int(minutes * 60 * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = violations = turn = 0
    while total < target:
        if turn % 9 == 4:
            text = VIOLATIONS[violations % len(VIOLATIONS)]
            violations += 1
        else:
            text = rng.choice(LESSON)
        speech = _espeak(text, VOICES[turn % len(VOICES)])
        turn += 1
        pause = np.zeros(int(rng.uniform(0.6, 4.0) * SAMPLE_RATE), np.float32)
        chunks += [speech * 0.8, pause]
        total += len(speech) + len(pause)
    audio = np.concatenate(chunks)[:target]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    meta.write_text(json.dumps({"violations": violations, "turns": turn}))
    return path, violations


@dataclass
class Run:
    name: str
    audio_seconds: float
    wall_seconds: float
    segments: int
    hits: int
    slice_latencies: list[float] = field(default_factory=list)

    @property
    def speed(self) -> float:
        return self.audio_seconds / self.wall_seconds


def run_sliced(
    audio: np.ndarray,
    *,
    slice_seconds: float = 10.0,
    policy: Policy,
    model: str | None,
    threads: int,
    on_slice: Callable[[int, list[Hit], float], None] | None = None,
    carry_audio: bool = True,
) -> Run:
    """Production path per slice: VAD + ASR + rules with carry. ``on_slice(index, hits, seconds)``
    is the hook for measuring more (e.g. storing flags: latency from slice close to flags stored)."""
    step = int(slice_seconds * SAMPLE_RATE)
    carry: CarryState | None = None
    segments = hits = 0
    latencies = []
    previous: np.ndarray | None = None
    previous_hits: list[tuple[str, str]] = []
    start = time.perf_counter()
    for i, a in enumerate(range(0, len(audio), step)):
        t0 = time.perf_counter()
        chunk = audio[a : a + step]
        duration = len(chunk) / SAMPLE_RATE
        if carry_audio:
            heard = transcribe_continuing(chunk, previous, model=model, cpu_threads=threads)
            spans = [TextSpan(s.text, s.start, s.end) for s in heard.transcript.segments]
            found, carry = evaluate_continuing(spans, heard.carried_seconds, carry, policy=policy,
                                               duration=duration, previous_hits=previous_hits)
            n_segments = sum(1 for s in heard.transcript.segments if s.end > 0)
        else:
            transcript = asr.transcribe(chunk, model=model, cpu_threads=threads)
            spans = [TextSpan(s.text, s.start, s.end) for s in transcript.segments]
            found, carry = evaluate(spans, carry, policy=policy, duration=duration)
            n_segments = len(transcript.segments)
        took = time.perf_counter() - t0
        latencies.append(took)
        segments += n_segments
        hits += len(found)
        previous, previous_hits = chunk, [(h.rule_id, str(h.evidence.get("value", "")).lower()) for h in found]
        if on_slice is not None:
            on_slice(i, found, took)
    wall = time.perf_counter() - start
    how = "speech carried across slices" if carry_audio else "text carry only (before)"
    return Run(f"pipeline, {slice_seconds:g} s slices, {how}", len(audio) / SAMPLE_RATE, wall, segments, hits,
               latencies)


def run_whole(path: Path, *, policy: Policy, model: str | None, threads: int) -> Run:
    from moderation.analyze import AnalysisOptions

    start = time.perf_counter()
    result = analyze_file(path, policy=policy, options=AnalysisOptions(model=model, cpu_threads=threads))
    wall = time.perf_counter() - start
    assert result.status == "ok", result.error
    segs = len(result.transcript.segments) if result.transcript else 0
    return Run("pipeline, whole file", result.duration or 0.0, wall, segs, len(result.hits))


def run_baseline(audio: np.ndarray, *, model: str | None, threads: int) -> Run:
    whisper = asr.get_model(model, threads)
    start = time.perf_counter()
    segments, _ = whisper.transcribe(audio, beam_size=5, vad_filter=False, condition_on_previous_text=False)
    n = sum(1 for _ in segments)
    wall = time.perf_counter() - start
    return Run("baseline: WhisperModel.transcribe, no VAD", len(audio) / SAMPLE_RATE, wall, n, 0)


def bench_model(audio: np.ndarray, path: Path, model: str, args: argparse.Namespace) -> list[Run]:
    t0 = time.perf_counter()
    asr.get_model(model, args.threads)
    print(f"{model}: model load {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    policy = Policy.default()
    runs = [run_sliced(audio, policy=policy, model=model, threads=args.threads)]
    if not args.skip_before:
        runs.append(run_sliced(audio, policy=policy, model=model, threads=args.threads, carry_audio=False))
    runs.append(run_baseline(audio, model=model, threads=args.threads))
    if not args.skip_whole:
        runs.append(run_whole(path, policy=policy, model=model, threads=args.threads))
    for r in runs:
        print(f"{model}: done {r.name} in {r.wall_seconds:.1f} s", file=sys.stderr)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="base,tiny.en", help="comma-separated: base, tiny.en or directories")
    ap.add_argument("--skip-whole", action="store_true", help="skip the whole-file pipeline run")
    ap.add_argument("--skip-before", action="store_true", help="skip the slices run without carried speech")
    args = ap.parse_args()

    t0 = time.perf_counter()
    path, violations = build_recording(args.minutes)
    audio = load_audio_16k(path)
    print(
        f"recording: {path.name}, {len(audio) / SAMPLE_RATE:.0f} s, {violations} violations said, "
        f"built/loaded in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    load_before = os.getloadavg()[0]
    results = {m: bench_model(audio, path, m, args) for m in args.models.split(",")}
    cores = os.cpu_count() or 1
    print(
        f"\n{len(audio) / SAMPLE_RATE:.0f} s class, {violations} violations said; int8, cpu_threads={args.threads}, "
        f"{cores} cores (load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}: shared machine)\n"
    )
    print("| model | run | audio s | wall s | audio-s per wall-s | segments | hits |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model, runs in results.items():
        for r in runs:
            print(f"| {model} | {r.name} | {r.audio_seconds:.0f} | {r.wall_seconds:.1f} | {r.speed:.1f} | "
                  f"{r.segments} | {r.hits} |")
    print()
    for model, runs in results.items():
        sliced, plain = runs[0], next(r for r in runs if r.name.startswith("baseline"))
        whole = next((r for r in runs if r.name == "pipeline, whole file"), None)
        lat = sorted(sliced.slice_latencies)
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        print(f"{model}: hits on slices {sliced.hits} vs whole file {whole.hits if whole else '-'}; "
              f"pipeline {sliced.speed:.1f} audio-s per wall-s vs plain transcribe {plain.speed:.1f} "
              f"({sliced.speed / plain.speed:.2f}x); per slice median {statistics.median(lat):.2f} s, p95 {p95:.2f} s; "
              f"speakers kept up with in real time: {sliced.speed:.1f} per ASR thread, "
              f"~{int(sliced.speed * cores / args.threads)} on {cores} cores (one ASR worker per core)")


if __name__ == "__main__":
    main()
