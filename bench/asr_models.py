"""Speech models side by side on the spoken test clips: flags found, false flags, wall time.

Runs every clip of ``tests/moderation/test_asr_pipeline.SPOKEN`` (espeak-ng, three voices) through
``analyze_file`` (VAD + ASR + policy) once per model, in one process and one run, and prints per
model: recall and precision of the flagged categories, clean clips flagged, the languages it
detected, wall time (model load apart). Usage:
``.venv/bin/python bench/asr_models.py [--models base,tiny.en] [--threads 1] [-v]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moderation import asr
from moderation.analyze import AnalysisOptions, analyze_file
from moderation.rules import CATEGORIES
from tests.moderation import fixtures as fx
from tests.moderation.test_asr_pipeline import SPOKEN


def run(model: str, threads: int, verbose: bool) -> dict[str, object]:
    t0 = time.perf_counter()
    asr.get_model(model, threads)
    load = time.perf_counter() - t0
    opts = AnalysisOptions(model=model, cpu_threads=threads)
    tp = fp = fn = 0
    clean_flagged = 0
    per_clip: list[float] = []
    languages: Counter[str] = Counter()
    misses: list[str] = []
    for voice, text, expected in SPOKEN:
        path = fx.speech(text, voice)
        t = time.perf_counter()
        result = analyze_file(path, options=opts)
        per_clip.append(time.perf_counter() - t)
        assert result.status == "ok", result.error
        got = {h.category for h in result.hits}
        languages[result.transcript.language if result.transcript else "-"] += 1
        tp += len(got & expected)
        fp += len(got - expected)
        fn += len(expected - got)
        clean_flagged += int(not expected and bool(got))
        if got != expected:
            misses.append(f"  {model}: said {text!r} -> {sorted(got)} (want {sorted(expected)}); "
                          f"heard {result.transcript_text!r}")
        elif verbose:
            print(f"  {model}: ok {result.transcript_text!r}", file=sys.stderr)
    if misses:
        print("\n".join(misses), file=sys.stderr)
    assert set(CATEGORIES) >= {c for _, _, e in SPOKEN for c in e}
    return {
        "model": model, "load": load, "wall": sum(per_clip), "median": statistics.median(per_clip),
        "recall": tp / max(1, tp + fn), "precision": tp / max(1, tp + fp), "positives": tp + fn,
        "clean": sum(1 for _, _, e in SPOKEN if not e), "clean_flagged": clean_flagged,
        "languages": ", ".join(f"{k} {v}" for k, v in languages.most_common()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="base,tiny.en")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    for _, text, _ in SPOKEN:  # make the clips first, so espeak-ng is not in the timings
        fx.speech(text)
    for voice, text, _ in SPOKEN:
        fx.speech(text, voice)
    load_before = os.getloadavg()[0]
    rows = [run(m, args.threads, args.verbose) for m in args.models.split(",")]
    print(f"\n{len(SPOKEN)} spoken clips, cpu_threads={args.threads}, {os.cpu_count()} cores "
          f"(load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}: shared machine)\n")
    print("| model | recall | precision | clean clips flagged | languages detected | wall s | median s per clip "
          "| load s |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['recall']:.2f} ({r['positives']}) | {r['precision']:.2f} | "
              f"{r['clean_flagged']} of {r['clean']} | {r['languages']} | {r['wall']:.1f} | {r['median']:.2f} | "
              f"{r['load']:.2f} |")


if __name__ == "__main__":
    main()
