"""Scripted aiortc participants for tests, load tests and ``classguard simulate``.

A ``Bot`` speaks the relay's signaling protocol (``classroom.signaling``) over any channel —
``signaling.channel_pair()`` in-process, ``WebSocketChannel`` against a running server — and can
publish an audio file (or a tone) as mic, a PNG as screen share and a synthetic camera, each on
its own on/off schedule. Switching off really stops sending (the transceiver goes ``inactive``
and a ``source`` off message is sent) unless the bot is told to misbehave. It counts the encoded
frames it receives per remote (participant, source) without decoding them.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from classroom.encoded import tap_receiver, vp8_is_keyframe
from classroom.media_peer import make_configuration
from classroom.signaling import SOURCE_KIND, Channel, ChannelClosed, decode_message

log = logging.getLogger("classguard.bot")

Window = tuple[float, float | None]  # (start_s, end_s) from join; None: until the bot leaves


class WebSocketChannel:
    """Client end of the protocol over a WebSocket (``websockets`` library)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self._ws: Any = None

    async def open(self) -> WebSocketChannel:
        from websockets.asyncio.client import connect

        self._ws = await connect(self.url, additional_headers=self.headers, max_size=2**20)
        return self

    async def send(self, message: dict[str, Any]) -> None:
        try:
            await self._ws.send(json.dumps(message))
        except Exception as exc:
            raise ChannelClosed(str(exc)) from exc

    async def receive(self) -> dict[str, Any]:
        try:
            text = await self._ws.recv()
        except Exception as exc:
            raise ChannelClosed(str(exc)) from exc
        return decode_message(text)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


def websocket_url(http_base: str, signal_url: str) -> str:
    """The ws(s):// URL of a ``signal_url`` from ``POST …/join`` (relative to ``http_base`` when it is a path)."""
    from urllib.parse import urljoin

    url = urljoin(http_base.rstrip("/") + "/", signal_url)
    return "ws" + url[len("http"):] if url.startswith("http") else url


async def join_channel(http_base: str, session_id: str, token: str,
                       headers: dict[str, str] | None = None) -> WebSocketChannel:
    """Open a participant's signaling socket the way a client must: ``POST …/join`` with the login
    token (a header, never a URL), then connect to the returned ``signal_url``, which carries a
    single-use join ticket."""
    import httpx

    async with httpx.AsyncClient(base_url=http_base, timeout=60) as client:
        r = await client.post(f"/api/v1/sessions/{session_id}/join", headers={"Authorization": f"Bearer {token}"})
    if r.status_code != 200:
        raise RuntimeError(f"join refused ({r.status_code}): {r.text}")
    return await WebSocketChannel(websocket_url(http_base, r.json()["signal_url"]), headers).open()


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone in 20 ms s16 mono frames, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self.rate = 48000
        self.samples = 960
        t = np.arange(self.samples * 50) / self.rate
        self._wave = (np.sin(2 * np.pi * frequency * t) * 8000).astype(np.int16)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / self.rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        offset = self._pts % len(self._wave)
        chunk = np.roll(self._wave, -offset)[: self.samples]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += self.samples
        return frame


class ImageTrack(MediaStreamTrack):
    """Video from a fixed set of frames (a PNG for screen share, a synthetic camera), paced at ``fps``."""

    kind = "video"

    def __init__(self, frames: Sequence[av.VideoFrame], fps: float = 5.0) -> None:
        super().__init__()
        self.frames = list(frames)
        self.fps = fps
        self._n = 0
        self._start: float | None = None

    @classmethod
    def from_png(cls, path: Path, fps: float = 5.0) -> ImageTrack:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
        # VP8 needs even dimensions
        w, h = frame.width // 2 * 2, frame.height // 2 * 2
        return cls([frame.reformat(width=w, height=h, format="yuv420p")], fps)

    @classmethod
    def synthetic(cls, width: int = 640, height: int = 480, fps: float = 15.0, frames: int = 30) -> ImageTrack:
        """A moving bar over a gradient: cheap to produce, not trivially compressible."""
        base = np.zeros((height, width, 3), np.uint8)
        base[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        base[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
        rng = np.random.default_rng(7)
        out = []
        for i in range(frames):
            img = base.copy()
            x = (i * width // frames) % width
            img[:, x : x + width // 10, 2] = 255
            img[rng.integers(0, height, 200), rng.integers(0, width, 200)] = 255
            out.append(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p"))
        return cls(out, fps)

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._n / self.fps - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        src = self.frames[self._n % len(self.frames)]
        frame = av.VideoFrame.from_ndarray(src.to_ndarray(), format="yuv420p") if len(self.frames) == 1 else src
        frame.pts = int(self._n * 90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return frame


def _codec_prefs(kind: str) -> list[Any]:
    caps = RTCRtpSender.getCapabilities(kind)
    wanted = ("audio/opus",) if kind == "audio" else ("video/vp8", "video/rtx")
    return [c for c in caps.codecs if c.mimeType.lower() in wanted]


class Bot:
    """One scripted participant. ``await bot.start()``, schedule sources, ``await bot.leave()``."""

    def __init__(self, channel: Channel, *, name: str = "bot", ice_servers: list[dict[str, Any]] | None = None) -> None:
        self.channel = channel
        self.name = name
        self.ice_servers = ice_servers or []
        self.participant_id: str | None = None
        self.room_id: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.participants: list[dict[str, Any]] = []
        self.received: dict[tuple[str, str], int] = defaultdict(int)
        self.first_video_keyframe: dict[tuple[str, str], bool] = {}
        self.video_keyframe_flags: dict[tuple[str, str], list[bool]] = defaultdict(list)  # first 10 frames
        self.tracks: dict[str, tuple[str, str]] = {}  # subscribe mid -> (participant_id, source)
        self.ended = asyncio.Event()
        self.welcome = asyncio.Event()
        self.started_at = 0.0
        self.publish_pc = RTCPeerConnection(make_configuration(self.ice_servers))
        self.subscribe_pc = RTCPeerConnection(make_configuration(self.ice_servers))
        self.transceivers: dict[str, RTCRtpTransceiver] = {}
        self._answer: asyncio.Future[str] | None = None
        self._publish_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._players: list[MediaPlayer] = []
        self._loop_task: asyncio.Task[None] | None = None
        self.subscribe_pc.on("track", self._on_track)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> Bot:
        self._loop_task = asyncio.ensure_future(self._receive_loop())
        await asyncio.wait_for(self.welcome.wait(), timeout)
        self.started_at = time.monotonic()
        return self

    async def leave(self) -> None:
        """Say goodbye and close both peer connections (the relay closes our segments)."""
        for task in self._tasks:
            task.cancel()
        try:
            await self.channel.send({"type": "leave"})
        except ChannelClosed:
            pass
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.channel.close()
        if self._loop_task is not None:
            self._loop_task.cancel()
        for pc in (self.publish_pc, self.subscribe_pc):
            await pc.close()
        for player in self._players:
            for t in (player.audio, player.video):
                if t is not None:
                    t.stop()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Poll ``predicate()`` (a callable) until it is true."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: condition not met in {timeout} s")
            await asyncio.sleep(0.05)

    # --- signaling -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        try:
            while True:
                msg = await self.channel.receive()
                self.messages.append(msg)
                kind = msg.get("type")
                if kind == "welcome":
                    self.participant_id, self.room_id = msg["participant_id"], msg["room_id"]
                    self.welcome.set()
                elif kind == "answer":
                    if self._answer is not None and not self._answer.done():
                        self._answer.set_result(msg["sdp"])
                elif kind == "offer":
                    await self._on_offer(msg)
                elif kind == "participants":
                    self.participants = msg["participants"]
                elif kind == "error":
                    self.errors.append(msg)
                    if self._answer is not None and not self._answer.done():
                        self._answer.set_exception(RuntimeError(f"{msg['error']}: {msg['detail']}"))
                elif kind in ("removed", "ended"):
                    self.ended.set()
        except (ChannelClosed, asyncio.CancelledError):
            self.ended.set()

    async def _on_offer(self, msg: dict[str, Any]) -> None:
        for mid, info in msg.get("tracks", {}).items():
            key = (info["participant_id"], info["source"])
            if self.tracks.get(mid) != key:
                self.first_video_keyframe.pop(key, None)
                self.video_keyframe_flags.pop(key, None)
            self.tracks[mid] = key
        await self.subscribe_pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
        await self.subscribe_pc.setLocalDescription(await self.subscribe_pc.createAnswer())
        await self.channel.send({"type": "answer", "sdp": self.subscribe_pc.localDescription.sdp})

    def _on_track(self, track: MediaStreamTrack) -> None:
        t = next(t for t in self.subscribe_pc.getTransceivers() if t.receiver.track is track)
        mid = t.mid
        assert mid is not None

        def count(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            key = self.tracks.get(mid)
            if key is None:
                return
            self.received[key] += 1
            if track.kind == "video":
                if key not in self.first_video_keyframe:
                    self.first_video_keyframe[key] = vp8_is_keyframe(frame.data)
                flags = self.video_keyframe_flags[key]
                if len(flags) < 10:
                    flags.append(vp8_is_keyframe(frame.data))

        # count encoded frames without decoding: cheap enough for load tests
        tap_receiver(t.receiver, count)

    async def _publish_negotiate(self) -> None:
        """Offer the publish PC's current state and apply the relay's answer."""
        pc = self.publish_pc
        await pc.setLocalDescription(await pc.createOffer())
        self._answer = asyncio.get_running_loop().create_future()
        await self.channel.send({"type": "offer", "sdp": pc.localDescription.sdp})
        sdp = await asyncio.wait_for(self._answer, 15)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def set_source(self, source: str, enabled: bool, track: MediaStreamTrack | None = None,
                         *, misbehave: bool = False) -> None:
        """Switch a source on (creating its transceiver on first use) or off.

        Off normally means: tell the relay, then set the transceiver ``inactive`` so nothing is
        sent. ``misbehave=True`` only tells the relay and keeps sending (a lying client).
        """
        async with self._publish_lock:
            t = self.transceivers.get(source)
            if enabled:
                if t is None:
                    if track is None:
                        raise ValueError(f"{source} needs a track the first time it is switched on")
                    t = self.publish_pc.addTransceiver(track, direction="sendonly")
                    t.setCodecPreferences(_codec_prefs(SOURCE_KIND[source]))
                    self.transceivers[source] = t
                else:
                    if track is not None:
                        t.sender.replaceTrack(track)
                    t.direction = "sendonly"
                await self._publish_negotiate()
                await self.channel.send({"type": "source", "source": source, "enabled": True, "mid": t.mid})
            else:
                await self.channel.send({"type": "source", "source": source, "enabled": False,
                                         "mid": t.mid if t else None})
                if t is not None and not misbehave:
                    t.direction = "inactive"
                    await self._publish_negotiate()

    # --- scripted sources -------------------------------------------------------------------

    def publish(self, source: str, track: MediaStreamTrack, windows: Sequence[Window] = ((0.0, None),),
                *, misbehave: bool = False) -> asyncio.Task[None]:
        """Publish any track as ``source`` ("mic" | "camera" | "screen") during ``windows``."""
        return self._schedule(source, track, windows, misbehave)

    def _schedule(self, source: str, track: MediaStreamTrack, windows: Sequence[Window],
                  misbehave: bool = False) -> asyncio.Task[None]:
        async def run() -> None:
            for start, end in windows:
                await self._sleep_until(start)
                await self.set_source(source, True, track)
                if end is None:
                    return
                await self._sleep_until(end)
                await self.set_source(source, False, misbehave=misbehave)

        task = asyncio.ensure_future(run())
        self._tasks.append(task)
        return task

    async def _sleep_until(self, offset: float) -> None:
        delay = self.started_at + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def publish_mic(self, windows: Sequence[Window] = ((0.0, None),), audio_file: Path | None = None,
                    *, misbehave: bool = False) -> asyncio.Task[None]:
        """Publish ``audio_file`` (looped) or a tone as mic during ``windows`` (seconds from join)."""
        track: MediaStreamTrack
        if audio_file is not None:
            player = MediaPlayer(str(audio_file), loop=True)
            self._players.append(player)
            assert player.audio is not None
            track = player.audio
        else:
            track = ToneTrack()
        return self._schedule("mic", track, windows, misbehave)

    def share_screen(self, png: Path, windows: Sequence[Window] = ((0.0, None),),
                     fps: float = 5.0) -> asyncio.Task[None]:
        """Share a PNG as the screen during ``windows``."""
        return self._schedule("screen", ImageTrack.from_png(png, fps), windows)

    def publish_camera(self, windows: Sequence[Window] = ((0.0, None),), width: int = 640, height: int = 480,
                       fps: float = 15.0) -> asyncio.Task[None]:
        """Publish a synthetic camera during ``windows``."""
        return self._schedule("camera", ImageTrack.synthetic(width, height, fps), windows)

    def heard(self, participant_id: str, source: str) -> int:
        """Encoded frames received from ``participant_id``'s ``source``."""
        return self.received.get((participant_id, source), 0)
