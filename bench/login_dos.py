"""Pre-auth flood: does a crowd of anonymous wrong logins slow down a signed-in bystander?

Starts a real ``classguard serve`` (embedded mode: SQLite, in-process workers) on a temp data
directory, creates one user with ``classguard users create``, then measures the bystander
polling ``GET /api/v1/me`` back to back:

- ``baseline``: the bystander alone;
- ``flood``: the same while ``--attackers`` concurrent clients post wrong logins (unknown
  e-mail addresses, one new one per attempt) for the same time.

Scenarios: ``default`` (the shipped throttle: past the per-address limit attempts are refused
before argon2) and ``unthrottled`` (limits lifted: every attempt costs a database reservation
and an argon2 check — the pool and the hashing threads alone must keep the bystander fast).
Prints a markdown table: bystander p50 / p99 / max and status counts of both sides.
Usage: ``.venv/bin/python bench/login_dos.py [--attackers 100] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classguard.cli.common import free_port
from tests.processes import stop_process

CLI = str(Path(sys.executable).with_name("classguard"))
PASSWORD = "a long bench secret 42"
UNTHROTTLED = {"CLASSGUARD_LOGIN_ADDRESS_MAX_FAILURES": "100000000",
               "CLASSGUARD_LOGIN_ACCOUNT_MAX_FAILURES": "100000000", "CLASSGUARD_LOGIN_MAX_FAILURES": "100000000"}


def start_server(extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, dict[str, str], Path]:
    data_dir = Path(tempfile.mkdtemp(prefix="classguard-dos-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSGUARD_")}
    env.update({"CLASSGUARD_DATA_DIR": str(data_dir), "CLASSGUARD_RETENTION_SWEEP_INTERVAL_SECONDS": "0"}, **extra)
    subprocess.run([CLI, "users", "create", "--email", "bystander@example.com", "--password", PASSWORD],
                   env=env, check=True, capture_output=True, timeout=300)
    port = free_port()
    log = open(data_dir / "server.log", "wb")
    proc = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base, env, data_dir
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


async def poll(client: httpx.AsyncClient, token: str, stop: asyncio.Event) -> tuple[list[float], Counter[int]]:
    lat: list[float] = []
    codes: Counter[int] = Counter()
    while not stop.is_set():
        t0 = time.perf_counter()
        r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        lat.append(time.perf_counter() - t0)
        codes[r.status_code] += 1
    return lat, codes


async def attack(client: httpx.AsyncClient, stop: asyncio.Event, codes: Counter[int]) -> None:
    while not stop.is_set():
        body = {"identifier": f"nobody-{uuid.uuid4().hex[:12]}@example.com", "password": "wrong password!"}
        try:
            r = await client.post("/api/v1/auth/login", json=body)
            codes[r.status_code] += 1
        except httpx.HTTPError as exc:
            codes[type(exc).__name__] += 1  # type: ignore[index]


async def crowd(base: str, attackers: int, seconds: float) -> None:
    """The attacking side alone (``--attack-only``): prints its status counts as JSON."""
    limits = httpx.Limits(max_connections=attackers + 10, max_keepalive_connections=attackers + 10)
    codes: Counter[int] = Counter()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        tasks = [asyncio.create_task(attack(client, stop, codes)) for _ in range(attackers)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
    print(json.dumps(sorted(codes.items(), key=str)))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


Row = tuple[str, list[float], Counter[int], Counter[int]]


async def measure(base: str, attackers: int, seconds: float) -> list[Row]:
    rows = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as me:
        r = await me.post("/api/v1/auth/login", json={"identifier": "bystander@example.com", "password": PASSWORD})
        r.raise_for_status()
        token = r.json()["token"]
        me.cookies.clear()
        for label, n in (("baseline (bystander alone)", 0), (f"flood ({attackers} wrong-login clients)", attackers)):
            stop = asyncio.Event()
            attack_codes: Counter[int] = Counter()
            # the crowd runs in its own process, so its client work does not delay the bystander's
            crowd_proc = None
            if n:
                crowd_proc = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--attack-only", base, "--attackers", str(n), "--seconds", str(seconds),
                    stdout=asyncio.subprocess.PIPE)
                await asyncio.sleep(1.0)  # let the crowd get going
            poller = asyncio.create_task(poll(me, token, stop))
            await asyncio.sleep(seconds - (1.0 if n else 0.0))
            stop.set()
            lat, codes = await poller
            if crowd_proc is not None:
                out, _ = await crowd_proc.communicate()
                attack_codes.update({k: v for k, v in json.loads(out.decode().strip().splitlines()[-1])})
            rows.append((label, lat, codes, attack_codes))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attackers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--scenarios", default="default,unthrottled")
    ap.add_argument("--attack-only", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attack_only:
        asyncio.run(crowd(args.attack_only, args.attackers, args.seconds))
        return
    print("| scenario | run | bystander requests | p50 ms | p99 ms | max ms | bystander statuses | attacker statuses |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario in args.scenarios.split(","):
        proc, base, _, data_dir = start_server(UNTHROTTLED if scenario == "unthrottled" else {})
        try:
            for label, lat, codes, attack_codes in asyncio.run(measure(base, args.attackers, args.seconds)):
                print(f"| {scenario} | {label} | {len(lat)} | {statistics.median(lat) * 1000:.1f} | "
                      f"{pct(lat, 0.99):.1f} | {max(lat) * 1000:.1f} | {dict(sorted(codes.items()))} | "
                      f"{dict(sorted(attack_codes.items(), key=str)) or '-'} |", flush=True)
        finally:
            stop_process(proc)
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
