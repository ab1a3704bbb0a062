"""``classguard load-test``: many aiortc bots in many rooms against a server; reports the server's
CPU and memory and the frames subscribers did not get.

Users and classes are made through the public API. Server figures come from ``/proc/<pid>``
(``--pid``, or the server this command starts itself when no ``--url`` is given) or from
``GET /api/v1/ops/relay-stats`` with staff credentials. Drops are measured over a window after
warm-up: each subscriber's encoded-frame counter per remote stream against what the publisher
sends in that time (audio 50 frames/s, video ``--fps``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from classguard.cli import app, setup_logging
from classguard.cli.common import code_from_outbox, free_port

log = logging.getLogger("classguard.load_test")
AUDIO_FPS = 50.0  # aiortc Opus: 20 ms frames


@dataclass
class Sample:
    at: float
    cpu_seconds: float
    rss_bytes: int


def proc_sample(pid: int) -> Sample:
    """CPU seconds (user + system) and resident memory of a local process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)
    with open(f"/proc/{pid}/statm") as fh:
        rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return Sample(time.monotonic(), cpu, rss)


@dataclass
class Stats:
    """Where server figures come from: a local pid, or the staff stats endpoint."""

    pid: int | None = None
    client: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    async def sample(self) -> Sample | None:
        if self.pid is not None:
            s = proc_sample(self.pid)
        elif self.headers:
            r = await self.client.get("/api/v1/ops/relay-stats", headers=self.headers)
            r.raise_for_status()
            body = r.json()
            s = Sample(time.monotonic(), float(body["cpu_seconds"]), int(body["rss_bytes"]))
        else:
            return None
        self.samples.append(s)
        return s


@dataclass
class Member:
    room: int
    role: str
    user_id: str
    token: str
    bot: Any = None


async def _user(client: Any, role: str, tag: str) -> tuple[str, str]:
    email = f"load-{tag}-{uuid.uuid4().hex[:10]}@loadtest.example.com"
    password = f"load-{uuid.uuid4().hex}"
    body = {"email": email, "password": password, "display_name": f"{role} {tag}", "date_of_birth": "1990-01-01",
            "role": role}
    r = await client.post("/api/v1/auth/register", json=body)
    if r.status_code != 202:
        raise RuntimeError(f"register failed: {r.status_code} {r.text}")
    r = await client.post("/api/v1/auth/register/verify", json={"identifier": email,
                                                                "code": await code_from_outbox(email)})
    if r.status_code != 201:
        raise RuntimeError(f"verify failed: {r.status_code} {r.text}")
    r = await client.post("/api/v1/auth/login", json={"identifier": email, "password": password})
    r.raise_for_status()
    client.cookies.clear()
    return r.json()["user"]["id"], r.json()["token"]


async def _make_rooms(client: Any, rooms: int, publishers: int) -> list[tuple[str, list[Member]]]:
    out = []
    for n in range(rooms):
        tid, ttoken = await _user(client, "teacher", f"r{n}t")
        auth = {"Authorization": f"Bearer {ttoken}"}
        r = await client.post("/api/v1/classes", json={"title": f"load room {n}"}, headers=auth)
        r.raise_for_status()
        class_id = r.json()["id"]
        members = [Member(n, "teacher", tid, ttoken)]
        for k in range(publishers - 1):
            sid_, stoken = await _user(client, "student", f"r{n}s{k}")
            r = await client.post(f"/api/v1/classes/{class_id}/enroll", headers={"Authorization": f"Bearer {stoken}"})
            r.raise_for_status()
            members.append(Member(n, "student", sid_, stoken))
        r = await client.post(f"/api/v1/classes/{class_id}/join", headers=auth)
        r.raise_for_status()
        out.append((r.json()["session"]["id"], members))
    return out


def _start_local_server(port: int) -> tuple[subprocess.Popen[bytes], Path]:
    data_dir = Path(tempfile.mkdtemp(prefix="classguard-load-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSGUARD_")}
    env["CLASSGUARD_DATA_DIR"] = str(data_dir)
    env["CLASSGUARD_REGISTRATION_MAX_PER_ADDRESS"] = "100000"  # every bot registers from 127.0.0.1
    env["CLASSGUARD_SMTP_HOST"] = ""  # codes stay in the outbox, which this process reads
    cli = str(Path(sys.executable).with_name("classguard"))
    with open(data_dir / "server.log", "wb") as fh:
        proc = subprocess.Popen([cli, "serve", "--port", str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT)
    return proc, data_dir


async def _wait_healthy_url(url: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await _wait_healthy(client)


async def _wait_healthy(client: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except Exception:  # not listening yet
            await asyncio.sleep(0.3)
    raise RuntimeError("server did not become healthy")



async def run_load(rooms: int, publishers: int, seconds: float, url: str | None, pid: int | None, video: bool,
                   fps: float, warmup: float, staff: tuple[str, str] | None) -> dict[str, Any]:
    import httpx

    from classroom.bot import Bot, join_channel

    proc = None
    if url is None:
        port = free_port()
        proc, data_dir = _start_local_server(port)
        url, pid = f"http://127.0.0.1:{port}", proc.pid
        log.warning("started classguard serve (pid %d) with data in %s", pid, data_dir)
        await _wait_healthy_url(url)
        # share the server's database to read the registration codes from its outbox
        from classguard.bootstrap import build_runtime
        from classguard.settings import Settings

        build_runtime(Settings(data_dir=data_dir, smtp_host=""))
    members: list[Member] = []
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await _wait_healthy(client)
            stats = Stats(pid=pid, client=client)
            if pid is None and staff is not None:
                r = await client.post("/api/v1/auth/login", json={"identifier": staff[0], "password": staff[1]})
                r.raise_for_status()
                client.cookies.clear()
                stats.headers = {"Authorization": f"Bearer {r.json()['token']}"}
            idle = await stats.sample()
            setup = await _make_rooms(client, rooms, publishers)
            t_join = time.monotonic()
            for session_id, room_members in setup:
                for m in room_members:
                    channel = await join_channel(url, session_id, m.token)  # a join ticket in the URL
                    m.bot = await Bot(channel, name=f"{m.role}-{m.user_id[:6]}").start()
                    m.bot.publish_mic()
                    if video:
                        m.bot.publish_camera(width=320, height=240, fps=fps)
                    members.append(m)
            per_stream = 2 if video else 1
            want = (publishers - 1) * per_stream
            limit = 30.0 + 2 * len(members)
            waits = [m.bot.wait_for(lambda m=m: len(m.bot.tracks) >= want, limit) for m in members]
            for outcome in await asyncio.gather(*waits, return_exceptions=True):
                if isinstance(outcome, Exception):
                    log.warning("a subscriber did not get every stream: %s", outcome)
            joined_s = time.monotonic() - t_join
            await asyncio.sleep(warmup)

            before = {id(m): dict(m.bot.received) for m in members}
            s1 = await stats.sample()
            client_cpu1 = sum(os.times()[:2])
            t1 = time.monotonic()
            while time.monotonic() - t1 < seconds:
                await asyncio.sleep(1.0)
                await stats.sample()
            t2 = time.monotonic()
            s2 = await stats.sample()
            client_cpu2 = sum(os.times()[:2])
            after = {id(m): dict(m.bot.received) for m in members}
            window = t2 - t1

            drops: list[float] = []
            received_total = 0
            for m in members:
                for key, n in after[id(m)].items():
                    got = n - before[id(m)].get(key, 0)
                    received_total += got
                    expected = window * (AUDIO_FPS if key[1] == "mic" else fps)
                    drops.append(max(0.0, 1 - got / expected) * 100)
                missing = want - len(after[id(m)])
                drops.extend([100.0] * max(0, missing))  # a stream never received is fully dropped
    finally:
        for m in members:
            try:
                await m.bot.leave()
            except Exception:  # a bot whose server went away
                log.debug("bot leave failed", exc_info=True)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    server: dict[str, Any] = {"source": "proc" if pid else ("api" if stats.headers else "none")}
    if s1 is not None and s2 is not None:
        server.update({
            "cpu_percent": round((s2.cpu_seconds - s1.cpu_seconds) / (s2.at - s1.at) * 100, 1),
            "rss_mb_peak": round(max(s.rss_bytes for s in stats.samples) / 2**20, 1),
            "rss_mb_idle": round(idle.rss_bytes / 2**20, 1) if idle else None,
        })
    return {
        "url": url, "rooms": rooms, "publishers_per_room": publishers, "video": video, "window_s": round(window, 1),
        "participants": len(members), "streams": len(drops), "join_s": round(joined_s, 1),
        "server": server,
        "client_cpu_percent": round((client_cpu2 - client_cpu1) / window * 100, 1),
        "frames_received": received_total,
        "drop_percent": {"median": round(statistics.median(drops), 2) if drops else None,
                         "max": round(max(drops), 2) if drops else None,
                         "streams_over_5pct": sum(1 for d in drops if d > 5)},
    }


@app.command("load-test")
def load_test(
    rooms: int = typer.Option(2, min=1, help="number of live classes"),
    publishers: int = typer.Option(2, min=2, help="participants per room, each publishing mic (and camera)"),
    seconds: float = typer.Option(20.0, min=1, help="measurement window after warm-up"),
    url: str | None = typer.Option(None, help="server to test (default: start classguard serve on a temp dir)"),
    pid: int | None = typer.Option(None, help="the server's pid for /proc figures (same machine)"),
    video: bool = typer.Option(False, help="also publish a 320x240 synthetic camera per participant"),
    fps: float = typer.Option(10.0, min=1, help="camera frame rate with --video"),
    warmup: float = typer.Option(3.0, min=0, help="seconds after everyone is connected before measuring"),
    staff_email: str | None = typer.Option(None, help="staff login for /api/v1/ops/relay-stats (remote server)"),
    staff_password: str | None = typer.Option(None, help="its password"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Drive bots against a server and report its CPU/memory and the subscribers' dropped frames.

    The bots run in this process (they encode their own media): keep an eye on
    ``client_cpu_percent`` — a saturated client makes drops that are not the server's.
    """
    setup_logging(logging.WARNING)
    staff = (staff_email, staff_password) if staff_email and staff_password else None
    report = asyncio.run(run_load(rooms, publishers, seconds, url, pid, video, fps, warmup, staff))
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    srv = report["server"]
    typer.echo(f"{report['rooms']} rooms x {report['publishers_per_room']} publishers "
               f"({'mic+camera' if video else 'mic'}), {report['streams']} subscribed streams, "
               f"window {report['window_s']} s (joined in {report['join_s']} s)")
    if "cpu_percent" in srv:
        typer.echo(f"server: CPU {srv['cpu_percent']} % of one core, RSS peak {srv['rss_mb_peak']} MB "
                   f"(idle {srv['rss_mb_idle']} MB) [{srv['source']}]")
    else:
        typer.echo("server: no figures (give --pid or --staff-email/--staff-password)")
    d = report["drop_percent"]
    typer.echo(f"frames received {report['frames_received']}; dropped per stream: median {d['median']} %, "
               f"max {d['max']} %, {d['streams_over_5pct']} streams over 5 %")
    typer.echo(f"load-test client CPU {report['client_cpu_percent']} % of one core")
