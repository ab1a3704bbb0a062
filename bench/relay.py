"""Relay CPU benchmark: encoded pass-through (classroom.relay) vs stock aiortc MediaRelay/MediaRecorder.

    .venv/bin/python bench/relay.py            # full table (~2-3 min), markdown on stdout
    .venv/bin/python bench/relay.py --quick    # shorter windows, 480p only

The relay under test runs in this process behind a WebSocket; the bots (one publisher, N
subscribers) run in a child process, so the publisher's encoding is not counted. CPU is this
process's CPU time (all threads, ``time.process_time``) over a steady window, as % of one core.
Per-subscriber cost = (CPU with N subscribers − CPU with none) / N; per recorded source =
(CPU recording mic+screen − CPU forwarding them unrecorded) / 2. Both paths run in the same
invocation so the figures sit beside a same-run baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's packages first

from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaRecorder, MediaRelay  # noqa: E402

from classroom.media_peer import make_configuration  # noqa: E402
from classroom.relay import Relay  # noqa: E402
from classroom.signaling import ChannelClosed, decode_message  # noqa: E402

# --- the relay side (this process) ----------------------------------------------------------

class ServerChannel:
    """Server end of the protocol over a ``websockets`` server connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self.ws.send(json.dumps(message))
        except Exception as exc:
            raise ChannelClosed(str(exc)) from exc

    async def receive(self) -> dict[str, Any]:
        try:
            return decode_message(await self.ws.recv())
        except Exception as exc:
            raise ChannelClosed(str(exc)) from exc

    async def close(self) -> None:
        await self.ws.close()


class StockRelay:
    """The baseline: decoded fan-out with aiortc's MediaRelay (one encode per subscriber) and
    MediaRecorder (decode + re-encode) — what the relay would cost without the encoded path."""

    def __init__(self, record_dir: Path | None) -> None:
        self.relay = MediaRelay()
        self.record_dir = record_dir
        self.sources: list[tuple[str, str, Any]] = []  # (participant, source, decoded track)
        self.pcs: list[RTCPeerConnection] = []
        self.recorders: list[MediaRecorder] = []
        self.tasks: list[asyncio.Future[Any]] = []

    async def connect(self, channel: ServerChannel) -> None:
        pid = str(uuid.uuid4())
        await channel.send({"type": "welcome", "room_id": "bench", "participant_id": pid, "ice_servers": []})
        publish: RTCPeerConnection | None = None
        subscribe: RTCPeerConnection | None = None
        try:
            while True:
                msg = await channel.receive()
                if msg.get("type") == "offer":
                    if publish is None:
                        publish = RTCPeerConnection(make_configuration([]))
                        self.pcs.append(publish)
                        publish.on("track", lambda track, pid=pid: self._on_track(pid, track))

                    await publish.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
                    await publish.setLocalDescription(await publish.createAnswer())
                    await channel.send({"type": "answer", "pc": "publish", "sdp": publish.localDescription.sdp})
                elif msg.get("type") == "answer" and subscribe is not None:
                    await subscribe.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                elif msg.get("type") == "hello-subscriber" and self.sources:
                    subscribe = RTCPeerConnection(make_configuration([]))
                    self.pcs.append(subscribe)
                    owners = []
                    for owner, name, track in self.sources:
                        subscribe.addTransceiver(self.relay.subscribe(track), "sendonly")
                        owners.append((owner, name))
                    await subscribe.setLocalDescription(await subscribe.createOffer())
                    tracks = {t.mid: {"participant_id": o, "source": n}
                              for t, (o, n) in zip(subscribe.getTransceivers(), owners, strict=True)}
                    await channel.send({"type": "offer", "pc": "subscribe", "sdp": subscribe.localDescription.sdp,
                                        "tracks": tracks})
        except ChannelClosed:
            return

    def _on_track(self, pid: str, track: Any) -> None:
        self.sources.append((pid, "mic" if track.kind == "audio" else "video", track))
        if self.record_dir is not None:
            rec = MediaRecorder(str(self.record_dir / f"{uuid.uuid4()}.webm"))
            rec.addTrack(self.relay.subscribe(track))
            self.recorders.append(rec)
            self.tasks.append(asyncio.ensure_future(rec.start()))

    async def close(self) -> None:
        for rec in self.recorders:
            with contextlib.suppress(Exception):
                await rec.stop()
        for pc in self.pcs:
            await pc.close()


@dataclass
class Scenario:
    path: str  # "encoded" | "stock"
    video: tuple[int, int] | None  # publisher video size, None: audio only
    video_source: str  # "camera" (never recorded) | "screen"
    subscribers: int
    record: bool
    label: str


async def run_scenario(sc: Scenario, window: float, fps: int) -> dict[str, float]:
    import websockets.asyncio.server as ws_server

    spool = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    engine: Relay | StockRelay
    if sc.path == "encoded":
        engine = Relay(spool, [], segment_seconds=10.0, snapshot_interval=0.0, record=sc.record)
    else:
        engine = StockRelay(spool if sc.record else None)
    room = uuid.uuid4()

    async def handler(ws: Any) -> None:
        channel = ServerChannel(ws)
        if isinstance(engine, Relay):
            await engine.connect(room, uuid.uuid4(), "bench", "student", channel)
        else:
            await engine.connect(channel)

    async with ws_server.serve(handler, "127.0.0.1", 0, max_size=2**20) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        args = [sys.executable, str(Path(__file__)), "--bots", f"ws://127.0.0.1:{port}/",
                "--subscribers", str(sc.subscribers), "--fps", str(fps), "--video-source", sc.video_source,
                "--stock" if sc.path == "stock" else "--encoded"]
        if sc.video:
            args += ["--video", f"{sc.video[0]}x{sc.video[1]}"]
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        assert proc.stdout is not None and proc.stdin is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 40)
            if not line.startswith(b"READY"):
                raise RuntimeError(f"bots did not get ready: {line!r}")
            await asyncio.sleep(1.5)  # warm-up: keyframe requests, renegotiations settle
            proc.stdin.write(b"MARK\n")
            await proc.stdin.drain()
            cpu0, t0 = time.process_time(), time.monotonic()
            await asyncio.sleep(window)
            cpu1, t1 = time.process_time(), time.monotonic()
            proc.stdin.write(b"MARK\n")
            await proc.stdin.drain()
            stats = json.loads((await asyncio.wait_for(proc.stdout.readline(), 20)).decode())
        finally:
            with contextlib.suppress(ProcessLookupError, BrokenPipeError, ConnectionResetError):
                proc.stdin.write(b"STOP\n")
                await proc.stdin.drain()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            await engine.close()
    cpu = (cpu1 - cpu0) / (t1 - t0) * 100
    written = await asyncio.to_thread(_spool_bytes, spool)
    return {"cpu": cpu, "written_kb": written / 1024, **{k: v / (t1 - t0) for k, v in stats.items()}}


def _spool_bytes(spool: Path) -> int:
    """Bytes the run wrote (proof the recording scenario recorded), then clean up."""
    written = sum(f.stat().st_size for f in spool.rglob("*.webm*"))
    shutil.rmtree(spool, ignore_errors=True)
    return written


# --- the bot side (child process) ------------------------------------------------------------

async def run_bots(url: str, subscribers: int, video: str | None, video_source: str, fps: int, stock: bool) -> None:
    from classroom.bot import Bot, ImageTrack, ToneTrack, WebSocketChannel

    publisher = await Bot(await WebSocketChannel(url).open(), name="publisher").start()
    await publisher.set_source("mic", True, ToneTrack())
    if video:
        w, h = (int(x) for x in video.split("x"))
        await publisher.set_source(video_source, True, ImageTrack.synthetic(w, h, fps, frames=fps))
    subs = []
    for i in range(subscribers):
        bot = await Bot(await WebSocketChannel(url).open(), name=f"sub{i}").start()
        if stock:
            await bot.channel.send({"type": "hello-subscriber"})
        subs.append(bot)

    def totals() -> dict[str, float]:
        audio = sum(v for b in subs for (_, src), v in b.received.items() if src == "mic")
        vid = sum(v for b in subs for (_, src), v in b.received.items() if src != "mic")
        return {"audio_pps": audio, "video_fps": vid}

    need = "video" if video else "audio"
    deadline = time.monotonic() + 30
    while not all(
        sum(v for (_, src), v in b.received.items() if (src == "mic") == (need == "audio")) > 10 for b in subs
    ):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    print("READY", flush=True)
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    marks: list[dict[str, float]] = []
    while True:
        line = (await reader.readline()).strip()
        if line == b"MARK":
            marks.append(totals())
            if len(marks) == 2:
                per_sub = max(1, subscribers)
                print(json.dumps({k: (marks[1][k] - marks[0][k]) / per_sub for k in marks[0]}), flush=True)
        elif line in (b"STOP", b""):
            break
    for bot in [publisher, *subs]:
        with contextlib.suppress(Exception):
            await bot.close()


# --- the table ---------------------------------------------------------------------------------

def scenarios(quick: bool) -> list[tuple[str, list[Scenario], int]]:
    """(row label, [scenario with N, baseline scenario], divisor)."""
    out: list[tuple[str, list[Scenario], int]] = []
    n = 3
    sizes = [(640, 480)] if quick else [(640, 480), (1280, 720)]
    for path in ("encoded", "stock"):
        out.append((f"per audio subscriber ({path})", [
            Scenario(path, None, "camera", n, False, "audio"),
            Scenario(path, None, "camera", 0, False, "audio base")], n))
        for size in sizes:
            res = f"{size[1]}p"
            out.append((f"per {res} video+audio subscriber ({path})", [
                Scenario(path, size, "camera", n, False, res),
                Scenario(path, size, "camera", 0, False, f"{res} base")], n))
        out.append((f"per recorded source, 480p screen + mic ({path})", [
            Scenario(path, (640, 480), "screen", 0, True, "rec"),
            Scenario(path, (640, 480), "screen", 0, False, "rec base")], 2))
    return out


async def main_async(quick: bool, only: str | None = None) -> None:
    window = 4.0 if quick else 5.0
    fps = 30
    rows = []
    cache: dict[tuple[Any, ...], dict[str, float]] = {}
    audio_cost: dict[str, float] = {}
    started = time.monotonic()
    for label, (with_n, base_sc), divisor in scenarios(quick):
        if only and only not in label:
            continue
        results = []
        for sc in (with_n, base_sc):
            key = (sc.path, sc.video, sc.video_source, sc.subscribers, sc.record)
            if key not in cache:
                cache[key] = await run_scenario(sc, window, fps)
                print(f"# {sc.path:8} {sc.label:10} subs={sc.subscribers} rec={sc.record}: "
                      f"{cache[key]['cpu']:.1f} % CPU, per-sub {cache[key].get('video_fps', 0):.1f} fps / "
                      f"{cache[key].get('audio_pps', 0):.1f} audio pps, wrote {cache[key]['written_kb']:.0f} KB",
                      file=sys.stderr, flush=True)
            results.append(cache[key])
        delta = (results[0]["cpu"] - results[1]["cpu"]) / divisor
        rows.append((label, results[0], results[1], delta))
        if label.startswith("per audio"):
            audio_cost[with_n.path] = delta
        if "video+audio" in label:  # the video share alone: minus the same path's audio subscriber
            rows.append((label.replace("video+audio", "video only (derived)"), results[0], results[1],
                         delta - audio_cost[with_n.path]))
    print(f"\nRelay CPU, % of one core (this machine, {os.cpu_count()} cores, {window:.0f} s windows, "
          f"{fps} fps synthetic VP8 from an aiortc bot in another process; "
          f"total {time.monotonic() - started:.0f} s)\n")
    print("| measurement | with N | baseline | cost per unit | rx per subscriber |")
    print("|---|---:|---:|---:|---|")
    for label, measured, base, delta in rows:
        rx = f"{measured.get('video_fps', 0):.0f} fps, {measured.get('audio_pps', 0):.0f} pps" \
            if "subscriber" in label and "derived" not in label else "-"
        print(f"| {label} | {measured['cpu']:.1f} | {base['cpu']:.1f} | **{delta:.1f}** | {rx} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", metavar="TEXT", help="run only the rows whose label contains TEXT")
    parser.add_argument("--bots", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--subscribers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--video", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--video-source", default="camera", help=argparse.SUPPRESS)
    parser.add_argument("--fps", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--stock", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--encoded", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bots:
        asyncio.run(run_bots(args.bots, args.subscribers, args.video, args.video_source, args.fps, args.stock))
    else:
        asyncio.run(main_async(args.quick, args.only))


if __name__ == "__main__":
    main()
