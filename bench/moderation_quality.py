"""Moderation quality on the spoken corpus, through the live path, beside the same run with ``tiny.en``.

Every clip of ``tests/moderation/corpus/speech.json`` is said in a class the way
``classguard simulate`` does it: the app on a local port (embedded defaults, in-process
pipeline), users registered over HTTP, aiortc bots joined over the real WebSocket signaling,
each clip published as a bot's mic through the relay (Opus), recorded into rolling slices and
run through the moderation pipeline (media → asr → rules). Several clips share a class to keep
it fast, but each is said by a different participant, so the pipeline never reads one clip's
speech into another's (carry is per speaker and session) and every stored flag maps back to
its clip through its speaker. Each clip starts after a lead-in silence of 0–``--lead-max`` s
(fixed per clip id), so some clips straddle a slice boundary as speech in a real class does.

Prints, per model, language and part (``tuning`` / ``blind``): recall (violating clips whose
expected categories were all flagged) and the false-flag rate (clean clips with any flag), then
recall per category. Each model runs in its own subprocess (one model load, a fresh runtime).
Details of misses and false flags are printed only for tuning clips: the blind third is for the
figures, not for tuning against (``--show-blind`` once tuning is over).

Usage: ``.venv/bin/python bench/moderation_quality.py [--model DIR|NAME] [--baseline-model tiny.en]
[--sample N] [--speakers 4] [--details] [--json out.json]``. ``--model`` defaults to the
configured ``CLASSGUARD_ASR_MODEL`` (empty: the built-in default).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc.contrib.media import MediaPlayer

from classguard.cli.common import free_port
from classguard.cli.simulate import (
    SimUser,
    _join_bot,
    _register,
    _wait_pipeline,
    _wait_spool_drained,
    moderation_report,
)
from moderation.media_prep import ffmpeg_exe

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "moderation" / "corpus" / "speech.json"
AUDIO = CORPUS.parent / "audio"
OUT = Path(__file__).resolve().parent / "out"
PARTS = ("tuning", "blind")
FLAG_FIELDS = ("category", "rule", "severity", "confidence", "quote")


# --- the corpus ------------------------------------------------------------------------------------


def load_corpus() -> tuple[list[str], list[dict[str, Any]]]:
    doc = json.loads(CORPUS.read_text(encoding="utf-8"))
    return list(doc["categories"]), list(doc["items"])


def sample(items: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` items spread over (language, violating/clean, part), the same ones every time."""
    groups: dict[tuple[str, bool, bool], list[dict[str, Any]]] = {}
    for it in items:
        groups.setdefault((it["lang"], bool(it["expected"]), bool(it["blind"])), []).append(it)
    rng = random.Random(seed)
    for g in groups.values():
        rng.shuffle(g)
    picked: list[dict[str, Any]] = []
    keys = sorted(groups)
    while len(picked) < min(n, len(items)):
        for k in keys:
            if groups[k] and len(picked) < n:
                picked.append(groups[k].pop())
    return picked


def lead_in(item_id: str, lead_max: float) -> float:
    """Seconds of silence before the clip: fixed per id, spread over [0, lead_max]."""
    frac = int(hashlib.sha256(item_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return round(frac * lead_max, 2)


def padded_wav(item: dict[str, Any], directory: Path, lead: float, tail: float) -> tuple[Path, float]:
    """The clip with ``lead`` s of silence before and ``tail`` s after, as 48 kHz mono WAV (what a
    browser mic sends, before Opus); returns (path, seconds)."""
    out = directory / f"{item['id']}.wav"
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(AUDIO / f"{item['id']}.opus"),
         "-af", f"adelay={int(lead * 1000)}:all=1,apad=pad_dur={tail}", "-ar", "48000", "-ac", "1", str(out)],
        check=True, capture_output=True,
    )
    with wave.open(str(out)) as w:
        seconds = w.getnframes() / w.getframerate()
    return out, seconds


# --- one model: the live run (worker subprocess) --------------------------------------------------


@dataclass
class Said:
    """One clip said in one class session by one participant."""

    item: dict[str, Any]
    session_id: str
    user_id: str
    lead: float
    seconds: float
    tail: float


async def _open_class(client: Any, teacher: SimUser, students: Iterable[SimUser]) -> str:
    auth = {"Authorization": f"Bearer {teacher.token}"}
    r = await client.post("/api/v1/classes", json={"title": f"corpus {uuid.uuid4().hex[:6]}"}, headers=auth)
    r.raise_for_status()
    class_id = r.json()["id"]
    for s in students:
        r = await client.post(f"/api/v1/classes/{class_id}/enroll", headers={"Authorization": f"Bearer {s.token}"})
        r.raise_for_status()
    r = await client.post(f"/api/v1/classes/{class_id}/join", headers=auth)
    r.raise_for_status()
    return str(r.json()["session"]["id"])


async def _say_round(port: int, rt: Any, client: Any, users: list[SimUser], group: list[dict[str, Any]],
                     work: Path, lead_max: float, tail: float) -> list[Said]:
    """One class: participant k says clip k (mic on for its padded length), then all leave."""
    speakers = users[: len(group)]
    session_id = await _open_class(client, speakers[0], speakers[1:])
    clips = []
    for item in group:
        lead = lead_in(item["id"], lead_max)
        path, seconds = await asyncio.to_thread(padded_wav, item, work, lead, tail)
        clips.append((item, path, lead, seconds))
    bots: list[Any] = []

    async def say(bot: Any, path: Path, seconds: float) -> None:
        # Mic on with the file played once (not looped), off when it has been played: the clock
        # starts after the negotiation, which on a loaded machine can take seconds.
        player = MediaPlayer(str(path))
        bot._players.append(player)  # the bot stops it on leave
        await bot.set_source("mic", True, player.audio)
        await asyncio.sleep(seconds + 0.3)
        await bot.set_source("mic", False)

    try:
        for user in speakers:  # the teacher first: the session is theirs
            bots.append(await _join_bot(port, session_id, user))
        await asyncio.gather(*(say(bot, path, seconds) for bot, (_, path, _, seconds) in zip(bots, clips, strict=True)))
    finally:
        for bot in bots:
            await bot.leave()
    await _wait_spool_drained(rt, session_id, 60)
    return [Said(item, session_id, user.id, lead, seconds, tail)
            for user, (item, _, lead, seconds) in zip(speakers, clips, strict=True)]


async def _collect(rt: Any, said: list[Said]) -> list[dict[str, Any]]:
    from classroom import repository as repo

    by_session: dict[str, list[Said]] = {}
    for s in said:
        by_session.setdefault(s.session_id, []).append(s)
    results = []
    async with rt.sessionmaker() as session:
        for session_id, clips in by_session.items():
            slices = await repo.list_slices(session, session_id=uuid.UUID(session_id), limit=10000)
            found = await moderation_report(session, [s.id for s in slices])
            for clip in clips:
                mine = sorted((s for s in slices if str(s.user_id) == clip.user_id and s.source == "mic"),
                              key=lambda s: s.seq)
                flags = [f for s in mine for f in found.get(str(s.id), {}).get("flags", [])]
                recorded = sum(s.duration_s for s in mine)
                results.append({
                    "id": clip.item["id"], "lead_s": clip.lead, "said_s": round(clip.seconds, 2),
                    "recorded_s": round(recorded, 2), "cut": recorded < clip.seconds - clip.tail - 0.1,
                    "slices": [{"seq": s.seq, "duration": round(s.duration_s, 2), "status": s.status,
                                "close_reason": s.close_reason} for s in mine],
                    "transcript": " | ".join(found.get(str(s.id), {}).get("transcript", "") or "" for s in mine),
                    "languages": sorted({found[str(s.id)].get("language") or "" for s in mine if str(s.id) in found}),
                    "flags": [{k: f[k] for k in FLAG_FIELDS} for f in flags],
                })
    return results


async def run_live(items: list[dict[str, Any]], model: str, speakers: int, lead_max: float,
                   tail: float) -> dict[str, Any]:
    """All ``items`` through the live path with ``model``; per-clip results and timings."""
    import httpx
    import uvicorn

    from classguard.app import create_app
    from classguard.settings import Settings
    from classroom.events import has_slice_consumers
    from storage.migrate import upgrade
    from storage.runtime import get_runtime

    data_dir = Path(tempfile.mkdtemp(prefix="cg-quality-"))
    work = data_dir / "said"
    work.mkdir()
    # The class's data is throw-away; the speech models stay where the install put them.
    settings = Settings(data_dir=data_dir, models_dir=Settings().speech_models_dir)
    if model:
        settings.asr_model = model
    await asyncio.to_thread(upgrade, settings.sync_database_url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    serving = asyncio.create_task(server.serve())
    started = time.perf_counter()
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.05)
        rt = get_runtime()
        if not has_slice_consumers():
            raise RuntimeError("no moderation pipeline is wired in this build")
        said: list[Said] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            users = [await _register(client, "teacher", "Teacher")]
            users += [await _register(client, "student", f"Student {i}") for i in range(1, speakers)]
            for i in range(0, len(items), speakers):
                said += await _say_round(port, rt, client, users, items[i : i + speakers], work, lead_max, tail)
                print(f"  said {len(said)}/{len(items)} clips ({time.perf_counter() - started:.0f} s)",
                      file=sys.stderr)
        classes_done = time.perf_counter()
        finished = True
        for session_id in dict.fromkeys(s.session_id for s in said):
            finished = await _wait_pipeline(rt, session_id, 1800) and finished
        pipeline_done = time.perf_counter()
        results = await _collect(rt, said)
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "model": model, "settings_model": settings.asr_model, "results": results, "pipeline_finished": finished,
        "seconds": {"classes": round(classes_done - started, 1),
                    "pipeline_tail": round(pipeline_done - classes_done, 1),
                    "total": round(pipeline_done - started, 1)},
        "said_seconds": round(sum(s.seconds for s in said), 1),
        "speech_seconds": round(sum(s.seconds - s.lead - s.tail for s in said), 1),
    }


# --- scoring ----------------------------------------------------------------------------------------


def flagged(result: dict[str, Any]) -> set[str]:
    return {f["category"] for f in result["flags"]}


@dataclass
class Score:
    violating: int = 0
    caught: int = 0
    clean: int = 0
    false_flags: int = 0

    def recall(self) -> str:
        return f"{self.caught / self.violating:.2f} ({self.caught}/{self.violating})" if self.violating else "–"

    def false_rate(self) -> str:
        return f"{self.false_flags / self.clean:.2f} ({self.false_flags}/{self.clean})" if self.clean else "–"


def score(items: list[dict[str, Any]], results: dict[str, dict[str, Any]], lang: str | None,
          part: str | None, category: str | None = None) -> Score:
    s = Score()
    for it in items:
        if (lang and it["lang"] != lang) or (part and ("blind" if it["blind"] else "tuning") != part):
            continue
        got = flagged(results[it["id"]])
        expected = set(it["expected"])
        if category is not None:
            if category in expected:
                s.violating += 1
                s.caught += category in got
            continue
        if expected:
            s.violating += 1
            s.caught += expected <= got
        else:
            s.clean += 1
            s.false_flags += bool(got)
    return s


def print_tables(categories: list[str], items: list[dict[str, Any]], runs: list[dict[str, Any]]) -> None:
    names = [r["label"] for r in runs]
    by_id = [{r["id"]: r for r in run["results"]} for run in runs]
    langs = sorted({it["lang"] for it in items})
    print("\nRecall (violating clips with every expected category flagged) and false flags (clean clips "
          "with any flag), live path:\n")
    print("| language | part | " + " | ".join(f"recall {n}" for n in names) + " | "
          + " | ".join(f"false flags {n}" for n in names) + " |")
    print("|---|---|" + "---:|" * (2 * len(names)))
    for lang in [*langs, None]:
        for part in [*PARTS, None]:
            scores = [score(items, r, lang, part) for r in by_id]
            print(f"| {lang or 'all'} | {part or 'all'} | " + " | ".join(s.recall() for s in scores) + " | "
                  + " | ".join(s.false_rate() for s in scores) + " |")
    print("\nRecall per category:\n")
    print("| language | category | part | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---:|" * len(names))
    for lang in langs:
        for cat in categories:
            for part in PARTS:
                scores = [score(items, r, lang, part, cat) for r in by_id]
                if scores[0].violating:
                    print(f"| {lang} | {cat} | {part} | " + " | ".join(s.recall() for s in scores) + " |")


def print_details(items: list[dict[str, Any]], runs: list[dict[str, Any]], show_blind: bool) -> None:
    for run in runs:
        results = {r["id"]: r for r in run["results"]}
        print(f"\nmisses and false flags, {run['label']}" + ("" if show_blind else " (tuning clips only)") + ":")
        for it in items:
            if it["blind"] and not show_blind:
                continue
            r = results[it["id"]]
            got, expected = flagged(r), set(it["expected"])
            if (expected and not expected <= got) or (not expected and got):
                what = "MISS" if expected else "FALSE"
                print(f"  {what} {it['id']} expected {sorted(expected)} got {sorted(got)} "
                      f"(lead {r['lead_s']} s, {len(r['slices'])} slice(s), {','.join(r['languages'])})")
                print(f"      said:  {it['text']}")
                print(f"      heard: {r['transcript']}")
                for f in r["flags"]:
                    print(f"      flag:  {f['category']} {f['rule']} {f['confidence']}: {f['quote']!r}")


# --- main ----------------------------------------------------------------------------------------------


def run_model_subprocess(model: str, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", model, "--out", str(out),
           "--speakers", str(args.speakers), "--lead-max", str(args.lead_max), "--tail", str(args.tail),
           "--ids", ",".join(ids)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    data: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    data["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return data


def main() -> None:
    from classguard.settings import Settings
    from moderation.asr import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="speech model (name or directory); default: the configured one")
    ap.add_argument("--baseline-model", default="tiny.en", help="the model to compare with ('' to skip)")
    ap.add_argument("--sample", type=int, default=0, help="only N clips, spread over language/clean/part")
    ap.add_argument("--speakers", type=int, default=4, help="participants (clips) per class")
    ap.add_argument("--lead-max", type=float, default=6.0, help="max lead-in silence before a clip, seconds")
    ap.add_argument("--tail", type=float, default=2.0, help="silence after a clip (covers mic start-up), seconds")
    ap.add_argument("--details", action="store_true", help="print misses and false flags (tuning clips)")
    ap.add_argument("--show-blind", action="store_true", help="include blind clips in details and --json")
    ap.add_argument("--json", type=Path, default=None, help="write per-clip results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ids", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    categories, items = load_corpus()
    if args.worker:
        wanted = set(args.ids.split(","))
        chosen = [it for it in items if it["id"] in wanted]
        data = asyncio.run(run_live(chosen, args.model or "", args.speakers, args.lead_max, args.tail))
        args.out.write_text(json.dumps(data, ensure_ascii=False))
        return

    chosen = sample(items, args.sample) if args.sample else items
    chosen_ids = {it["id"] for it in chosen}
    chosen = [it for it in items if it["id"] in chosen_ids]  # corpus order
    configured = Settings().asr_model
    primary = args.model if args.model is not None else configured
    models = [primary]
    if args.baseline_model and args.baseline_model != (primary or DEFAULT_MODEL):
        models.append(args.baseline_model)
    load_before = os.getloadavg()[0]
    runs = []
    for model in models:
        label = Path(model).name if model else f"{DEFAULT_MODEL} (default)"
        print(f"running {len(chosen)} clips with {label} ...", file=sys.stderr)
        run = run_model_subprocess(model, [it["id"] for it in chosen], args)
        run["label"] = label
        runs.append(run)

    n_viol = sum(1 for it in chosen if it["expected"])
    print(f"\nspoken corpus: {len(chosen)} clips ({n_viol} violating, {len(chosen) - n_viol} clean; "
          f"{sum(1 for it in chosen if it['blind'])} blind), {args.speakers} participants per class, "
          f"lead-in 0–{args.lead_max:g} s; {os.cpu_count()} CPUs, load average {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f} (shared machine)")
    print("\n| model | classes s | pipeline tail s | total s | audio said s | speech s | clips cut short | finished |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for run in runs:
        t = run["seconds"]
        print(f"| {run['label']} | {t['classes']} | {t['pipeline_tail']} | {t['total']} | {run['said_seconds']} | "
              f"{run['speech_seconds']} | {sum(r['cut'] for r in run['results'])} | {run['pipeline_finished']} |")
    print_tables(categories, chosen, runs)
    if args.details:
        print_details(chosen, runs, args.show_blind)
    if args.json is not None:
        blind = {it["id"] for it in chosen if it["blind"]}
        for run in runs:
            if not args.show_blind:
                run["results"] = [r for r in run["results"] if r["id"] not in blind]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(runs, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
