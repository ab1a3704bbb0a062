"""``classguard simulate``: a whole class in one process, on the embedded defaults.

A temp (or given) data directory, migrations, the app on a free local port (uvicorn, in this
process), a teacher and a student with a class, both joined as aiortc bots over the real
WebSocket signaling and relay. The teacher plays speech (an audio file, or espeak-ng) as mic
on a schedule and can share a PNG as screen; then the command waits for the moderation
pipeline (if one is wired) and prints what was recorded, transcribed and flagged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from classguard.cli import app, setup_logging
from classguard.cli.common import code_from_outbox, free_port

log = logging.getLogger("classguard.simulate")

DEFAULT_SPEECH = ("Good morning everyone. Today we practise fractions. One half plus one quarter "
                  "is three quarters. Please open your books at page twelve.")
Window = tuple[float, float | None]


def parse_schedule(text: str) -> list[Window]:
    """``"0-6,10-16"`` → ``[(0, 6), (10, 16)]``; ``"3-"`` means from 3 s until the end."""
    windows: list[Window] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        start_s, sep, end_s = part.partition("-")
        try:
            start = float(start_s)
            end = float(end_s) if end_s.strip() else None
        except ValueError:
            raise typer.BadParameter(f"bad window {part!r}; use START-END in seconds, e.g. 0-6,10-16") from None
        if not sep or start < 0 or (end is not None and end <= start):
            raise typer.BadParameter(f"bad window {part!r}; use START-END with END > START >= 0")
        if windows and (windows[-1][1] is None or start < (windows[-1][1] or 0)):
            raise typer.BadParameter("windows must be in order and must not overlap")
        windows.append((start, end))
    return windows


def speech_wav(path: Path, text: str = DEFAULT_SPEECH) -> Path | None:
    """Speech made with espeak-ng (48 kHz mono if sox is there); None if espeak-ng is missing."""
    if shutil.which("espeak-ng") is None:
        return None
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True, timeout=60)
    if shutil.which("sox") is None:
        return raw
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(path)], check=True,
                   capture_output=True, timeout=60)
    return path



@dataclass
class SimPlan:
    data_dir: Path
    audio: list[Path]
    mic_windows: list[Window]
    screen: Path | None
    screen_windows: list[Window]
    seconds: float
    wait_seconds: float


@dataclass
class SimUser:
    id: str
    email: str
    token: str
    name: str
    role: str


@dataclass
class SimRun:
    """What happened, for the report."""

    class_id: str = ""
    session_id: str = ""
    joined_at: float = 0.0  # wall clock of the teacher's join (time 0 of the report)
    users: dict[str, SimUser] = field(default_factory=dict)
    bots: dict[str, Any] = field(default_factory=dict)
    pipeline: bool = False
    pipeline_finished: bool | None = None


async def _register(client: Any, role: str, name: str) -> SimUser:
    email = f"{role}-{uuid.uuid4().hex[:8]}@simulate.example.com"
    password = f"sim-{uuid.uuid4().hex}"
    body = {"email": email, "password": password, "display_name": name, "date_of_birth": "1990-01-01", "role": role}
    r = await client.post("/api/v1/auth/register", json=body)
    if r.status_code != 202:
        raise RuntimeError(f"could not register the simulated {role}: {r.text}")
    code = await code_from_outbox(email)
    r = await client.post("/api/v1/auth/register/verify", json={"identifier": email, "code": code})
    if r.status_code != 201:
        raise RuntimeError(f"could not verify the simulated {role}: {r.text}")
    r = await client.post("/api/v1/auth/login", json={"identifier": email, "password": password})
    r.raise_for_status()
    client.cookies.clear()  # each request below names its user with a bearer token
    return SimUser(id=r.json()["user"]["id"], email=email, token=r.json()["token"], name=name, role=role)


async def _join_bot(port: int, session_id: str, user: SimUser) -> Any:
    from classroom.bot import Bot, join_channel

    channel = await join_channel(f"http://127.0.0.1:{port}", session_id, user.token)  # a join ticket, not the token
    return await Bot(channel, name=user.name).start()


async def _wait_spool_drained(rt: Any, session_id: str, timeout: float) -> None:
    """Every segment of the session is stored once the relay forgot the room and the spool is empty."""
    from classroom.live import relay_of

    spool = rt.settings.data_dir / "spool" / session_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        relay = relay_of(rt)
        open_room = relay is not None and uuid.UUID(session_id) in relay.rooms
        if not open_room and not (spool.is_dir() and any(spool.rglob("*.webm*"))):
            return
        await asyncio.sleep(0.2)
    log.warning("segments of %s still in the spool after %.0f s", session_id, timeout)


async def _wait_pipeline(rt: Any, session_id: str, timeout: float) -> bool:
    """Wait until every slice of the session is done or failed; False on timeout."""
    from classroom import repository as repo

    deadline = time.monotonic() + timeout
    while True:
        async with rt.sessionmaker() as session:
            left = await repo.count_unfinished_slices(session, [uuid.UUID(session_id)])
        if left == 0:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)


async def moderation_report(session: Any, slice_ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
    """Per slice: what the moderation pipeline found (transcript, screen text, flags).

    Extension point for the moderation domain: reads its tables when they exist; returns ``{}``
    without them. Add fields here as the pipeline grows.
    """
    try:
        from moderation.models import Flag, SliceAnalysis
    except ImportError:
        return {}
    from sqlalchemy import select

    out: dict[str, dict[str, Any]] = {str(i): {"transcript": "", "ocr": [], "flags": []} for i in slice_ids}
    if not slice_ids:
        return out
    for a in (await session.scalars(select(SliceAnalysis).where(SliceAnalysis.slice_id.in_(slice_ids)))).all():
        entry = out[str(a.slice_id)]
        entry["transcript"] = a.transcript
        entry["language"] = a.language
        entry["ocr"] = [o.get("text") for o in (a.ocr or [])]
    for f in (await session.scalars(select(Flag).where(Flag.slice_id.in_(slice_ids)))).all():
        out[str(f.slice_id)]["flags"].append({
            "category": f.category, "rule": f.rule_id, "severity": f.severity, "confidence": f.confidence,
            "start_ms": f.start_ms, "end_ms": f.end_ms, "quote": f.quote, "auto_action": f.auto_action,
        })
    return out


async def build_report(rt: Any, plan: SimPlan, run: SimRun) -> dict[str, Any]:
    from classroom import repository as repo

    sid = uuid.UUID(run.session_id)
    names = {u.id: u.role for u in run.users.values()}

    def rel(at: datetime) -> float:
        return round(at.timestamp() - run.joined_at, 2)

    async with rt.sessionmaker() as session:
        slices = await repo.list_slices(session, session_id=sid, limit=10000)
        trail = await repo.recording_events(session, sid)
        found = await moderation_report(session, [s.id for s in slices])
    recorded: dict[str, float] = {}
    rows = []
    for s in slices:
        recorded[s.source] = round(recorded.get(s.source, 0.0) + s.duration_s, 2)
        row = {"id": str(s.id), "who": names.get(str(s.user_id), str(s.user_id)), "source": s.source,
               "start": rel(s.started_at), "end": rel(s.ended_at), "duration": round(s.duration_s, 2),
               "seq": s.seq, "status": s.status, "close_reason": s.close_reason, "media_key": s.media_key,
               "size_bytes": s.size_bytes}
        row.update(found.get(str(s.id), {}))
        rows.append(row)
    return {
        "data_dir": str(plan.data_dir),
        "class_id": run.class_id,
        "session_id": run.session_id,
        "participants": {u.role: {"id": u.id, "name": u.name} for u in run.users.values()},
        "schedule": {"mic": plan.mic_windows, "screen": plan.screen_windows if plan.screen else [],
                     "seconds": plan.seconds},
        "recorded_seconds": recorded,
        "slices": sorted(rows, key=lambda r: (r["start"], r["source"])),
        "recording_events": [{"who": names.get(str(e.user_id), str(e.user_id)), "source": e.source,
                              "enabled": e.enabled, "at": rel(e.at), "by": e.by} for e in trail],
        "moderation": {"pipeline": run.pipeline, "finished": run.pipeline_finished},
        "received_frames": {role: {f"{k[0][:8]}/{k[1]}": v for k, v in bot.received.items()}
                            for role, bot in run.bots.items()},
    }


async def run_simulation(plan: SimPlan) -> dict[str, Any]:
    import httpx
    import uvicorn

    from classguard.app import create_app
    from classguard.settings import Settings
    from classroom.events import has_slice_consumers
    from storage.migrate import upgrade
    from storage.runtime import get_runtime

    settings = Settings(data_dir=plan.data_dir)
    await asyncio.to_thread(upgrade, settings.sync_database_url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    serving = asyncio.create_task(server.serve())
    run = SimRun()
    try:
        while not server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("the server stopped while starting")
            await asyncio.sleep(0.05)
        rt = get_runtime()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            teacher = await _register(client, "teacher", "Teacher")
            student = await _register(client, "student", "Student")
            run.users = {"teacher": teacher, "student": student}
            r = await client.post("/api/v1/classes", json={"title": "Simulated class"},
                                  headers={"Authorization": f"Bearer {teacher.token}"})
            r.raise_for_status()
            run.class_id = r.json()["id"]
            r = await client.post(f"/api/v1/classes/{run.class_id}/enroll",
                                  headers={"Authorization": f"Bearer {student.token}"})
            r.raise_for_status()
            r = await client.post(f"/api/v1/classes/{run.class_id}/join",
                                  headers={"Authorization": f"Bearer {teacher.token}"})
            r.raise_for_status()
            run.session_id = r.json()["session"]["id"]

        bots = {"teacher": await _join_bot(port, run.session_id, teacher)}
        run.joined_at = time.time()
        bots["student"] = await _join_bot(port, run.session_id, student)
        run.bots = bots
        speakers = ["teacher", "student"]
        for i, audio in enumerate(plan.audio[: len(speakers)]):
            bots[speakers[i]].publish_mic(plan.mic_windows, audio)
        if not plan.audio:
            bots["teacher"].publish_mic(plan.mic_windows, None)  # a tone when there is no speech at all
        if plan.screen is not None:
            bots["teacher"].share_screen(plan.screen, plan.screen_windows)
        await asyncio.sleep(max(0.0, run.joined_at + plan.seconds - time.time()))
        for bot in bots.values():
            await bot.leave()
        await _wait_spool_drained(rt, run.session_id, 30)

        run.pipeline = has_slice_consumers()
        if run.pipeline:
            run.pipeline_finished = await _wait_pipeline(rt, run.session_id, plan.wait_seconds)
        return await build_report(rt, plan, run)
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)


def print_human(report: dict[str, Any]) -> None:
    echo = typer.echo
    echo(f"class {report['class_id']} — session {report['session_id']}  (data in {report['data_dir']})")
    echo("recorded: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["recorded_seconds"].items()) or "nothing")
    echo("slices (seconds from the teacher's join):")
    for s in report["slices"]:
        echo(f"  {s['who']:8} {s['source']:8} {s['start']:7.2f} – {s['end']:7.2f}  ({s['duration']:.2f} s, "
             f"{s['close_reason']}, {s['status']})")
        if s.get("transcript"):
            echo(f"           said: {s['transcript']}")
        for text in s.get("ocr", []):
            echo(f"           read: {text}")
        for f in s.get("flags", []):
            echo(f"           FLAG {f['category']} ({f['rule']}, {f['severity']}): {f['quote']!r}")
    echo("recording events:")
    for e in report["recording_events"]:
        echo(f"  {e['at']:7.2f}  {e['who']:8} {e['source']:7} {'on ' if e['enabled'] else 'off'} by {e['by']}")
    mod = report["moderation"]
    if not mod["pipeline"]:
        echo("moderation: no pipeline is wired in this build")
    elif not mod["finished"]:
        echo("moderation: timed out waiting for the pipeline")


@app.command()
def simulate(
    audio: list[Path] = typer.Option(None, "--audio", exists=True, dir_okay=False,
                                     help="WAV/any audio as mic: 1st for the teacher, 2nd for the student"),
    mic_schedule: str = typer.Option("", help="mic on-windows in seconds from join, e.g. 0-6,10-16 (default: all)"),
    screen: Path | None = typer.Option(None, exists=True, dir_okay=False, help="a PNG the teacher shares"),
    screen_schedule: str = typer.Option("", help="screen-share windows, e.g. 2-8 (default: all)"),
    seconds: float = typer.Option(0.0, min=0, help="class length (default: last window end + 2 s, or 12 s)"),
    data_dir: Path | None = typer.Option(None, help="keep everything here (default: a temp dir)"),
    wait: float = typer.Option(300.0, min=0, help="max seconds to wait for the moderation pipeline"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log the server's info messages"),
) -> None:
    """Run a whole simulated class (teacher + student bots) and report slices, transcripts, flags."""
    setup_logging(logging.INFO if verbose else logging.WARNING)
    everything: list[Window] = [(0.0, None)]
    mic_windows = parse_schedule(mic_schedule) if mic_schedule else everything
    screen_windows = parse_schedule(screen_schedule) if screen_schedule else everything
    ends = [e for _, e in mic_windows + (screen_windows if screen else []) if e is not None]
    length = seconds or ((max(ends) + 2.0) if ends else 12.0)
    directory = data_dir or Path(tempfile.mkdtemp(prefix="classguard-sim-"))
    directory.mkdir(parents=True, exist_ok=True)
    audio_files = list(audio or [])
    if not audio_files:
        made = speech_wav(directory / "speech.wav")
        if made is not None:
            audio_files = [made]
    plan = SimPlan(data_dir=directory, audio=audio_files, mic_windows=mic_windows, screen=screen,
                   screen_windows=screen_windows, seconds=length, wait_seconds=wait)
    report = asyncio.run(run_simulation(plan))
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        print_human(report)
