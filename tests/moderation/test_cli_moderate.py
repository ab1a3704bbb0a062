"""``classguard moderate``: files in, one JSON line (or a summary) per file out, bad files do not stop it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from classguard.cli import app
from moderation.rules import Policy
from tests.moderation import fixtures as fx

pytestmark = pytest.mark.slow


def _run(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, ["moderate", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()] if "--json" in args else []
    return result.exit_code, lines, result.stdout + result.stderr


def test_json_lines_one_per_file_and_failures_do_not_stop_the_rest() -> None:
    spoken = fx.speech("Add me on WeChat, my number is one three eight, one two three four, five six seven eight.")
    files = [
        spoken,
        fx.junk(".png", b"this is a text file, not a picture"),
        fx.text_image(["WeChat: teacher_li 13812345678"]),
        fx.junk(".mp4", bytes(range(256)) * 40),
        fx.silence(2.0),
    ]
    code, lines, _ = _run("--json", *map(str, files))
    assert code == 1  # at least one file failed; all were still reported
    assert [line["path"] for line in lines] == [str(f) for f in files]
    assert [line["status"] for line in lines] == ["ok", "failed", "ok", "failed", "ok"]
    for line in lines:
        assert set(line) >= {"path", "status", "error", "transcript", "ocr_text", "flags"}

    speech, not_png, screen, fake_mp4, silent = lines
    assert "my number is" in speech["transcript"].lower()
    phone = next(f for f in speech["flags"] if f["rule"] == "contact.phone")
    assert set(phone) == {"category", "rule", "rule_version", "severity", "start", "end", "evidence"}
    shipped = Policy.default().rule("contact.phone").spec.version
    assert phone["category"] == "off_platform_contact" and phone["rule_version"] == shipped
    assert phone["evidence"]["quote"] and phone["evidence"]["value"] == "13812345678"

    assert "not a readable image" in not_png["error"] and not_png["flags"] == []
    assert "not a readable audio or video file" in fake_mp4["error"]
    assert {f["rule"] for f in screen["flags"]} == {"contact.messenger", "contact.phone"}
    assert screen["ocr_text"].replace(" ", "") == "WeChat:teacher_li13812345678"
    assert silent == {**silent, "status": "ok", "transcript": "", "flags": [], "error": None}


def test_all_ok_exits_zero_even_with_flags_and_prints_a_summary() -> None:
    clip = fx.speech("You are so stupid, shut up you idiot.")
    code, _, out = _run(str(clip))
    assert code == 0
    insult = Policy.default().rule("abuse.insult").spec.version
    assert "ok (audio" in out and f"[medium] abuse (abuse.insult v{insult}" in out


def test_custom_policy_file_and_bad_policy(tmp_path: Path) -> None:
    from moderation.rules import DEFAULT_POLICY_PATH

    doc = json.loads(DEFAULT_POLICY_PATH.read_text())
    doc["version"] = "strict-1"
    doc["rules"].append(
        {
            "id": "custom.en.fractions",
            "version": 2,
            "category": "custom",
            "severity": "low",
            "type": "keywords",
            "params": {"keywords": ["fractions"]},
        }
    )
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(doc))
    code, lines, _ = _run("--json", "--policy", str(policy), str(fx.text_image(["Lesson 3: fractions"])))
    assert code == 0
    (line,) = lines
    assert [(f["rule"], f["rule_version"]) for f in line["flags"]] == [("custom.en.fractions", 2)]

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "x", "rules": [{"id": "a", "version": 1}]}))
    code, lines, out = _run("--json", "--policy", str(bad), str(fx.silence(1.0)))
    assert code == 2 and lines == []
    assert "policy" in out and "invalid" in out


def test_missing_model_directory_is_a_usage_error() -> None:
    code, _, out = _run("--model", "/nonexistent/whisper", str(fx.silence(1.0)))
    assert code == 2 and "not a local directory" in out


def test_installed_command_runs_as_a_process() -> None:
    """The real entry point: stdout carries only JSON lines, progress goes to stderr."""
    exe = Path(sys.executable).with_name("classguard")
    proc = subprocess.run(
        [str(exe), "moderate", "--json", str(fx.silence(1.0)), str(fx.junk(".wav", b""))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["ok", "failed"]
    assert "empty (0 bytes)" in lines[1]["error"]
