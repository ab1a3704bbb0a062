"""A kill -9 of ``classguard serve`` mid-segment: the open segment's data is already on disk (the
recorder flushes about once a second), so the restart recovers it as a playable slice that ends
near the kill; no broken slice exists, and the trail and stays are closed by the restart. (The
discard-with-a-log-line path for an unreadable leftover is tested in ``test_recorder_spool``.)"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from classroom.bot import Bot, WebSocketChannel
from tests.classroom.live_server import LiveServer, ServerUser
from tests.classroom.media_checks import decode_webm

pytestmark = pytest.mark.slow

SEGMENT_SECONDS = 5.0
# The open segment is killed this long after it opened: long enough for a couple of flushed
# clusters, well short of the segment boundary.
OPEN_FOR = 2.8
# What a kill may lose at the end: the recorder's 250 ms batch plus the unflushed cluster (≤ 1 s),
# plus scheduling slack on a busy machine.
MAX_LOST = timedelta(seconds=2.0)


async def _first_slice(server: LiveServer, session_id: str, who: ServerUser, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        slices = await asyncio.to_thread(server.get, f"/api/v1/sessions/{session_id}/slices", who)
        if slices:
            first: dict[str, Any] = slices[0]
            return first
        assert time.monotonic() < deadline, "no slice was closed in time"
        await asyncio.sleep(0.1)


async def test_kill_9_mid_segment_then_restart_recovers_the_open_segment(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "var", {"CLASSGUARD_SEGMENT_SECONDS": str(SEGMENT_SECONDS)}).start()
    try:
        teacher = server.register("teacher@example.com", "teacher")
        student = server.register("student@example.com", "student")
        moderator = server.create_staff("mod@example.com")
        class_id = server.make_class(teacher, [student])
        session_id = server.post(f"/api/v1/classes/{class_id}/join", teacher)["session"]["id"]

        bot = await Bot(await WebSocketChannel(server.ws_url(session_id, teacher)).open(), name="teacher").start()
        bot.publish_mic()
        first = await _first_slice(server, session_id, moderator)  # segment 0 closed, segment 1 open
        opened = datetime.fromisoformat(first["ended_at"])
        await asyncio.sleep(max(0.0, OPEN_FOR - (datetime.now(UTC) - opened).total_seconds()))
        before = server.get(f"/api/v1/sessions/{session_id}/slices", moderator)
        spool = server.data_dir / "spool" / session_id
        killed_at = datetime.now(UTC)
        server.kill9()
        parts = {p.name: p.stat().st_size for p in spool.rglob("*.webm.part")}
        await bot.close()
        assert len(parts) == 1, parts  # the open segment, and its packets reached the file before the kill
        assert next(iter(parts.values())) > 4000, parts

        server.start()  # same data dir: recovery runs before serving
        after = server.get(f"/api/v1/sessions/{session_id}/slices", moderator)
    finally:
        server.stop()

    log = server.log_text()
    assert "recovered segment" in log and "discarding unrecoverable segment" not in log, log[-3000:]
    assert {s["id"] for s in before} <= {s["id"] for s in after}
    new = [s for s in after if s["id"] not in {b["id"] for b in before}]
    assert [s["close_reason"] for s in new] == ["crash-recovered"], after
    recovered = new[0]
    last_closed = max(before, key=lambda s: s["seq"])
    started, ended = datetime.fromisoformat(recovered["started_at"]), datetime.fromisoformat(recovered["ended_at"])
    print(f"kill at {killed_at.isoformat()}: recovered seq {recovered['seq']} {started.time()}–{ended.time()} "
          f"({recovered['duration_s']:.2f} s, lost {(killed_at - ended).total_seconds():.2f} s at the end)")
    assert recovered["seq"] == last_closed["seq"] + 1 and recovered["source"] == "mic"
    assert abs(started - datetime.fromisoformat(last_closed["ended_at"])) < timedelta(seconds=0.5)
    assert killed_at - MAX_LOST <= ended <= killed_at + timedelta(seconds=0.3)
    assert recovered["duration_s"] >= OPEN_FOR - MAX_LOST.total_seconds()
    media = server.data_dir / "media" / recovered["media_key"]
    decoded = decode_webm(media)
    assert decoded.seconds == pytest.approx(recovered["duration_s"], abs=0.1) and decoded.rms > 0.01, decoded

    for s in after:  # no broken slice: every one opens and every packet decodes
        decoded = decode_webm(server.data_dir / "media" / s["media_key"])
        assert decoded.packets > 0 and decoded.errors == 0 and decoded.frames == decoded.packets, (s, decoded)
        assert s["size_bytes"] == (server.data_dir / "media" / s["media_key"]).stat().st_size
    assert not list(spool.rglob("*.webm*"))  # nothing left for the next start

    # the trail and the stays are closed by the restart (nobody is connected any more)
    server.start()
    try:
        trail = server.get(f"/api/v1/sessions/{session_id}/recording-events", moderator)
        stays = server.get(f"/api/v1/sessions/{session_id}/participants", moderator)
    finally:
        server.stop()
    assert [(e["enabled"], e["by"]) for e in trail] == [(True, "participant"), (False, "system")]
    assert trail[-1]["reason"] == "server restarted"
    assert stays and all(p["left_reason"] == "server-restart" for p in stays)
