"""Engine fixtures for the live-media relay tests: a relay with recorded callbacks, bots joined
over in-memory channels, and small media files made on the spot (no downloads)."""

from __future__ import annotations

import asyncio
import uuid
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from classroom.bot import Bot
from classroom.recorder import ClosedSegment
from classroom.relay import Relay, RelayCallbacks
from classroom.signaling import channel_pair


@dataclass
class Events:
    """Everything the relay told the domain, in order."""

    segments: list[ClosedSegment] = field(default_factory=list)
    changes: list[tuple[uuid.UUID, uuid.UUID, str, bool, datetime, str]] = field(default_factory=list)
    left: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    fail_segments: bool = False

    async def on_segment_closed(self, segment: ClosedSegment) -> None:
        self.segments.append(segment)
        if self.fail_segments:
            raise RuntimeError("the domain's database is down")

    async def on_source_changed(self, room_id: uuid.UUID, participant_id: uuid.UUID, source: str,
                                enabled: bool, at: datetime, by: str) -> None:
        self.changes.append((room_id, participant_id, source, enabled, at, by))

    async def on_participant_left(self, room_id: uuid.UUID, participant_id: uuid.UUID) -> None:
        self.left.append((room_id, participant_id))

    def callbacks(self) -> RelayCallbacks:
        return RelayCallbacks(self.on_segment_closed, self.on_source_changed, self.on_participant_left)

    def of(self, participant_id: uuid.UUID, source: str) -> list[ClosedSegment]:
        return sorted((s for s in self.segments if s.participant_id == participant_id and s.source == source),
                      key=lambda s: s.seq)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
async def relay(tmp_path: Path, events: Events) -> AsyncIterator[Relay]:
    r = Relay(tmp_path / "spool", [], segment_seconds=2.5, snapshot_interval=1.0, ice_timeout=8.0,
              callbacks=events.callbacks())
    yield r
    await r.close()


@dataclass
class Joined:
    bot: Bot
    participant_id: uuid.UUID
    task: asyncio.Task[None]


JoinFn = Callable[..., Awaitable[Joined]]


@pytest.fixture
async def join(relay: Relay) -> AsyncIterator[JoinFn]:
    """``await join(room_id, "A", participant_id=None, role="student")`` → a started bot."""
    joined: list[Joined] = []

    async def _join(room_id: uuid.UUID, name: str, participant_id: uuid.UUID | None = None,
                    role: str = "student", **bot_kwargs: Any) -> Joined:
        pid = participant_id or uuid.uuid4()
        server_end, client_end = channel_pair()
        task = asyncio.ensure_future(relay.connect(room_id, pid, name, role, server_end))
        bot = await Bot(client_end, name=name, **bot_kwargs).start()
        j = Joined(bot, pid, task)
        joined.append(j)
        return j

    yield _join
    for j in joined:
        await j.bot.close()
    await asyncio.gather(*(j.task for j in joined), return_exceptions=True)


@pytest.fixture(scope="session")
def screen_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 640×360 'slide' with text on it."""
    path = tmp_path_factory.mktemp("media") / "slide.png"
    img = Image.new("RGB", (640, 360), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 620, 80), fill=(30, 60, 160))
    draw.text((40, 40), "Lesson 3: fractions", fill=(255, 255, 255))
    for i in range(8):
        draw.text((40, 110 + 28 * i), f"{i + 1}/8 of a pizza", fill=(20, 20, 20))
    img.save(path)
    return path


@pytest.fixture(scope="session")
def voice_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of a warbling tone, 16-bit mono 48 kHz (stands in for speech)."""
    path = tmp_path_factory.mktemp("media") / "voice.wav"
    rate = 48000
    t = np.arange(rate * 2) / rate
    signal = (np.sin(2 * np.pi * (300 + 80 * np.sin(2 * np.pi * 3 * t)) * t) * 9000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(signal.tobytes())
    return path
