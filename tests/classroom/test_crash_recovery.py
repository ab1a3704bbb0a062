"""A kill -9 of ``classguard serve`` loses at most the open segment: on restart the leftover
partial file becomes a valid slice or is discarded with a log line, and no broken slice exists."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from classroom.bot import Bot, WebSocketChannel
from tests.classroom.live_server import LiveServer
from tests.classroom.media_checks import decode_webm

pytestmark = pytest.mark.slow


async def test_kill_9_mid_segment_then_restart(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "var", {"CLASSGUARD_SEGMENT_SECONDS": "3"}).start()
    try:
        teacher = server.register("teacher@example.com", "teacher")
        student = server.register("student@example.com", "student")
        moderator = server.create_staff("mod@example.com")
        class_id = server.make_class(teacher, [student])
        session_id = server.post(f"/api/v1/classes/{class_id}/join", teacher)["session"]["id"]

        bot = await Bot(await WebSocketChannel(server.ws_url(session_id, teacher)).open(), name="teacher").start()
        bot.publish_mic()
        await asyncio.sleep(4.5)  # one closed 3 s segment, the next one open
        before = server.get(f"/api/v1/sessions/{session_id}/slices", moderator)
        spool = server.data_dir / "spool" / session_id
        server.kill9()
        leftovers = sorted(p.name for p in spool.rglob("*.webm*"))
        await bot.close()
        assert any(name.endswith(".webm.part") for name in leftovers), leftovers  # the open segment

        server.start()  # same data dir: recovery runs before serving
        after = server.get(f"/api/v1/sessions/{session_id}/slices", moderator)
    finally:
        server.stop()

    log = server.log_text()
    recovered = "recovered segment" in log
    discarded = "discarding unrecoverable segment" in log
    assert recovered or discarded, log[-3000:]
    print(f"slices before the kill: {len(before)}, after restart: {len(after)}; "
          f"leftovers {leftovers}; recovered={recovered} discarded={discarded}")

    assert {s["id"] for s in before} <= {s["id"] for s in after}
    assert len(after) == len(before) + (1 if recovered else 0)
    if recovered:
        assert [s["close_reason"] for s in after if s["id"] not in {b["id"] for b in before}] == ["crash-recovered"]
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
