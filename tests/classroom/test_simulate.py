"""``classguard simulate``: a whole class in one process; mic slices follow the schedule."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.classroom.live_server import CLI
from tests.classroom.media_checks import decode_webm


@pytest.mark.slow
def test_simulate_mic_schedule_json(tmp_path: Path) -> None:
    data_dir = tmp_path / "sim"
    out = subprocess.run([CLI, "simulate", "--mic-schedule", "0-6,10-16", "--json", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)  # one JSON object, nothing else on stdout
    mic = [s for s in report["slices"] if s["source"] == "mic"]
    assert mic and {s["who"] for s in mic} == {"teacher"}
    assert 10.5 <= report["recorded_seconds"]["mic"] <= 12.5, report["recorded_seconds"]
    for s in mic:
        # inside 0–6 or 10–16 (seconds from join, small tolerance for negotiation/arrival), never in 6–10
        assert (s["start"] >= -0.3 and s["end"] <= 6.7) or (s["start"] >= 9.7 and s["end"] <= 16.7), s
        decoded = decode_webm(data_dir / "media" / s["media_key"])
        assert decoded.packets > 0 and decoded.errors == 0 and decoded.frames == decoded.packets
    events = [(e["enabled"], e["by"]) for e in report["recording_events"] if e["who"] == "teacher"]
    assert events == [(True, "participant"), (False, "participant")] * 2
    # the student heard the teacher through the relay
    assert sum(report["received_frames"]["student"].values()) > 0
    if report["moderation"]["pipeline"]:
        assert report["moderation"]["finished"] is True
        assert all(s["status"] in ("done", "failed") for s in report["slices"])


def test_simulate_rejects_a_bad_schedule() -> None:
    out = subprocess.run([CLI, "simulate", "--mic-schedule", "6-2"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "END > START" in out.stderr
