"""Latency from a slice closing (its row committed) to its flags being stored, embedded mode.

Several participants speak at once: ``--speakers`` speakers each close a ``--slice-seconds``
WebM/Opus slice every ``--slice-seconds`` seconds, in real time, for ``--slices`` rounds (all
speakers close together: the worst case). Each slice goes through the real stack —
``classroom.service.create_slice`` (media stored, row inserted, pipeline announced in one
transaction), the in-process dispatcher, media → asr → rules, flags stored.

Same-run baselines, on the same recordings:

- ``one at a time``: each slice created only after the previous one finished (no contention:
  the pipeline's own cost per slice);
- ``plain transcribe``: decode + ``moderation.asr.transcribe`` called directly, no pipeline,
  no database (the floor the pipeline adds its bookkeeping to).

Prints a markdown table of p50 / p95 / max latency and the mean time per stage.
Usage: ``.venv/bin/python bench/latency.py [--speakers 4] [--slices 6] [--slice-seconds 10]``.
"""


from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from accounts import service as accounts
from accounts.models import Role, User
from classguard.bootstrap import start_runtime, stop_runtime
from classguard.settings import Settings
from classroom import service as classroom
from classroom.schemas import ClassIn
from moderation.asr import transcribe
from moderation.media_prep import load_audio_16k
from moderation.models import Flag, StageRun
from storage.db import unit_of_work
from storage.migrate import upgrade
from storage.runtime import Runtime, get_runtime
from tests.moderation import fixtures

LINES = [
    "Good morning everyone, let's open the book to page forty two.",
    "Today we will practise the past tense with some short stories.",
    "Read the first paragraph aloud, slowly and clearly please.",
    "She walked to the park and played football with her friends.",
    "Seven times eight is fifty six, and nine times nine is eighty one.",
    "Your homework is exercises four to seven on page one hundred and thirty one.",
    "If you want extra practice you can text me, my number is four one five two zero three seven eight six six.",
    "Add me on WeChat after class, my ID is teacher underscore li.",
    "Any questions before we move on to the next exercise?",
]
VOICES = ["en-us", "en-gb", "en+f3", "en+m3"]


@dataclass
class Sample:
    slice_id: uuid.UUID
    committed: datetime
    latency: float = 0.0
    flags: int = 0


def make_slice_media(speaker: int, index: int, seconds: float) -> Path:
    """``seconds`` of one speaker's speech as WebM/Opus (sentences, then silence to the length)."""
    voice = VOICES[speaker % len(VOICES)]
    parts: list[Path | float] = []
    total = 0.0
    k = speaker * 3 + index
    while True:
        wav = fixtures.speech(LINES[k % len(LINES)], voice=voice)
        length = len(fixtures.read_wav16k(wav)) / fixtures.RATE
        if total + length + 0.4 > seconds:
            break
        parts += [wav, 0.4]
        total += length + 0.4
        k += 1
    parts.append(round(max(0.1, seconds - total), 2))
    return fixtures.transcode(fixtures.concat(parts), ".webm")


async def make_room(rt: Runtime, speakers: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    async with unit_of_work(rt.sessionmaker) as session:
        users: list[User] = []
        for i in range(speakers):
            users.append(await accounts.register(session, rt.settings, accounts.NewUser(
                email=f"bench{uuid.uuid4().hex[:8]}@example.com", phone=None, password="bench password 123",
                display_name=f"Speaker {i}", date_of_birth=date(1990, 1, 1),
                role=Role.teacher if i == 0 else Role.student)))
        cls = await classroom.create_class(session, users[0], ClassIn(title="latency bench"))
        live, _ = await classroom.start_session(session, cls, users[0])
    return live.id, [u.id for u in users]


async def close_slice(rt: Runtime, session_id: uuid.UUID, user_id: uuid.UUID, seq: int, path: Path,
                      seconds: float, t0: datetime) -> Sample:
    start = t0 + timedelta(seconds=seq * seconds)
    facts = classroom.SegmentFacts(room_id=session_id, participant_id=user_id, source="mic", path=path, seq=seq,
                                   started_at=start, ended_at=start + timedelta(seconds=seconds),
                                   duration=seconds, close_reason="rotate")
    async with unit_of_work(rt.sessionmaker) as session:
        row, outcome = await classroom.create_slice(session, rt.media, facts)
    assert row is not None, outcome
    return Sample(row.id, datetime.now(UTC))


async def finish_times(rt: Runtime, samples: list[Sample]) -> dict[str, list[float]]:
    """Fill each sample's latency (commit → rules stage done) and return seconds per stage."""
    per_stage: dict[str, list[float]] = {"queue": [], "media": [], "asr": [], "rules": []}
    async with unit_of_work(rt.sessionmaker) as session:
        for s in samples:
            runs = {r.stage: r for r in (await session.scalars(
                select(StageRun).where(StageRun.slice_id == s.slice_id))).all()}
            rules = runs["rules"]
            assert rules.status == "done" and rules.finished_at is not None, (s.slice_id, rules.status, rules.error)
            s.latency = (rules.finished_at - s.committed).total_seconds()
            s.flags = len((await session.scalars(select(Flag.id).where(Flag.slice_id == s.slice_id))).all())
            media_start = runs["media"].started_at
            assert media_start is not None
            per_stage["queue"].append((media_start - s.committed).total_seconds())
            for name in ("media", "asr", "rules"):
                r = runs[name]
                if r.started_at and r.finished_at:
                    per_stage[name].append((r.finished_at - r.started_at).total_seconds())
    return per_stage


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def row(name: str, values: list[float], extra: str = "") -> str:
    return (f"| {name} | {len(values)} | {statistics.median(values):.2f} | {pct(values, 0.95):.2f} | "
            f"{max(values):.2f} | {extra} |")


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="cg-latency-"))
    settings = Settings(data_dir=data_dir, inprocess_concurrency=args.concurrency)
    upgrade(settings.sync_database_url)
    print(f"preparing {args.speakers}x{args.slices} slices of {args.slice_seconds:.0f} s ...", file=sys.stderr)
    media = [[make_slice_media(k, i, args.slice_seconds) for i in range(args.slices)] for k in range(args.speakers)]
    rt = await start_runtime(settings, lifecycle=False)
    try:
        # Warm up: the speech model loads once per process; keep that out of every figure.
        await asyncio.to_thread(transcribe, load_audio_16k(media[0][0]))

        # 1) concurrent, real time: every speaker closes a slice every slice-seconds.
        session_id, users = await make_room(rt, args.speakers)
        t0 = datetime.now(UTC)
        concurrent: list[Sample] = []
        began = time.monotonic()
        for i in range(args.slices):
            await asyncio.sleep(max(0.0, began + (i + 1) * args.slice_seconds - time.monotonic()))
            for k in range(args.speakers):
                concurrent.append(await close_slice(rt, session_id, users[k], i, media[k][i], args.slice_seconds, t0))
        await get_runtime().dispatcher.join(timeout=600)  # type: ignore[attr-defined]
        stages_c = await finish_times(rt, concurrent)

        # 2) baseline: the same slices one at a time, each after the previous finished.
        session_id, users = await make_room(rt, args.speakers)
        sequential: list[Sample] = []
        for i in range(args.slices):
            for k in range(args.speakers):
                sequential.append(await close_slice(rt, session_id, users[k], i, media[k][i], args.slice_seconds, t0))
                await get_runtime().dispatcher.join(timeout=600)  # type: ignore[attr-defined]
        stages_s = await finish_times(rt, sequential)

        # 3) floor: decode + transcribe directly.
        plain: list[float] = []
        for k in range(args.speakers):
            for i in range(args.slices):
                t = time.perf_counter()
                audio = await asyncio.to_thread(load_audio_16k, media[k][i])
                await asyncio.to_thread(transcribe, audio)
                plain.append(time.perf_counter() - t)
    finally:
        await stop_runtime()
        shutil.rmtree(data_dir, ignore_errors=True)

    load = os.getloadavg()
    print(f"\nslice-close → flags stored, embedded mode (SQLite, in-process workers, concurrency "
          f"{args.concurrency}, one ASR at a time), {os.cpu_count()} CPUs, load avg {load[0]:.2f}, "
          f"{args.speakers} speakers × {args.slices} slices × {args.slice_seconds:.0f} s\n")
    print("| run | slices | p50 s | p95 s | max s | notes |")
    print("|---|---|---|---|---|---|")
    flags_c = sum(s.flags for s in concurrent)
    print(row(f"{args.speakers} speakers at once, real time", [s.latency for s in concurrent],
              f"{flags_c} flags"))
    print(row("baseline: one slice at a time", [s.latency for s in sequential],
              f"{sum(s.flags for s in sequential)} flags"))
    print(row("floor: decode + transcribe, no pipeline", plain, "no database, no queue"))
    print("\nmean seconds per stage (queue = commit → media stage start):\n")
    print("| stage | at once | one at a time |")
    print("|---|---|---|")
    for name in ("queue", "media", "asr", "rules"):
        a, b = stages_c[name], stages_s[name]
        print(f"| {name} | {statistics.mean(a):.2f} | {statistics.mean(b):.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--speakers", type=int, default=4)
    p.add_argument("--slices", type=int, default=6, help="slices per speaker")
    p.add_argument("--slice-seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=2, help="in-process workers (the embedded default is 2)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
