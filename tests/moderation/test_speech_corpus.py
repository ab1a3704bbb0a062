"""The spoken corpus (``corpus/speech.json`` + ``corpus/audio/``): its shape, and a sample through the pipeline.

The whole corpus runs through the live path (relay, Opus, rolling slices) in
``bench/moderation_quality.py``; here two clips per language — one violation, one clean lesson,
none from the blind third — go through the classroom's ``create_slice`` → media → asr → rules and
are read back through the moderator's API. One speech model load for the module (the pipeline's
cached model). Mandarin needs a multilingual model and is skipped on an English-only one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from classguard.settings import Settings
from moderation import asr
from moderation.media_prep import ffmpeg_exe
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation.slice_factory import add_slice, live_room

CORPUS_DIR = Path(__file__).parent / "corpus"
ROOT = Path(__file__).resolve().parents[2]
# One violation and one clean lesson per language, chosen from the tuning part.
SAMPLE = {"en": ("en-001", "en-049"), "zh": ("zh-001", "zh-049")}
CATEGORIES = {"off_platform_contact", "payment_bypass", "abuse", "personal_data"}


def corpus() -> dict[str, dict[str, Any]]:
    items = json.loads((CORPUS_DIR / "speech.json").read_text(encoding="utf-8"))["items"]
    return {it["id"]: it for it in items}


def test_corpus_has_both_languages_a_blind_third_and_current_audio() -> None:
    items = list(corpus().values())
    violating = [it for it in items if it["expected"]]
    assert len(violating) >= 80 and len(items) - len(violating) >= 40
    for lang in ("en", "zh"):
        mine = [it for it in items if it["lang"] == lang]
        assert 0.4 <= len(mine) / len(items) <= 0.6, lang
        assert sum(it["blind"] for it in mine) >= len(mine) // 3, lang
        assert {c for it in mine for c in it["expected"]} == CATEGORIES, lang
    english = [it for it in items if it["lang"] == "en"]
    assert len({it["voice"] for it in english}) >= 3 and len({it["speed"] for it in english}) >= 2
    # Every clip is on disk and was made from the text it is labelled with (not an older one).
    spec = importlib.util.spec_from_file_location("make_speech_corpus", ROOT / "scripts" / "make_speech_corpus.py")
    assert spec is not None and spec.loader is not None
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    manifest = json.loads((CORPUS_DIR / "audio" / "manifest.json").read_text())
    stale = [it["id"] for it in items
             if manifest.get(it["id"], {}).get("source") != maker.source_digest(it)
             or not (CORPUS_DIR / "audio" / f"{it['id']}.opus").is_file()]
    assert stale == [], "run scripts/make_speech_corpus.py for these"
    for clips in SAMPLE.values():
        assert not any(corpus()[c]["blind"] for c in clips), "the unit-test sample must not come from the blind part"


def as_webm(item_id: str, directory: Path) -> Path:
    """The clip as the recorder stores a slice: WebM/Opus at 48 kHz, a second of silence after it."""
    out = directory / f"{item_id}.webm"
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(CORPUS_DIR / "audio" / f"{item_id}.opus"),
                    "-af", "apad=pad_dur=1", "-c:a", "libopus", "-ar", "48000", str(out)], check=True)
    return out


async def through_pipeline(client: httpx.AsyncClient, ids: tuple[str, ...], directory: Path) -> dict[str, Any]:
    """Each clip as one slice of its own speaker; clip id → the moderator's view of its analysis."""
    room = await live_room(students=len(ids) - 1)
    slices: dict[str, uuid.UUID] = {}
    for speaker, item_id in zip(room.speakers, ids, strict=True):
        slices[item_id] = await add_slice(room, as_webm(item_id, directory), user_id=speaker)
    await get_runtime().dispatcher.join(timeout=300)  # type: ignore[attr-defined]
    mod = await logged_in(client, "moderator")
    out = {}
    for item_id, slice_id in slices.items():
        r = await client.get(f"/api/v1/moderation/slices/{slice_id}/analysis",
                             params={"reason": "speech corpus sample"}, headers=mod.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["slice"]["status"] == "done", body["slice"]
        out[item_id] = body
    return out


def check(results: dict[str, Any]) -> None:
    items = corpus()
    for item_id, got in results.items():
        expected = set(items[item_id]["expected"])
        flagged = {f["category"] for f in got["flags"]}
        heard = got["transcript"]
        if expected:
            assert expected <= flagged, (item_id, heard, [(f["rule_id"], f["quote"]) for f in got["flags"]])
        else:
            assert flagged == set(), (item_id, heard, [(f["rule_id"], f["quote"]) for f in got["flags"]])


@pytest.mark.slow
async def test_english_sample_clean_lesson_unflagged_violation_flagged(client: httpx.AsyncClient,
                                                                      tmp_path: Path) -> None:
    check(await through_pipeline(client, SAMPLE["en"], tmp_path))


@pytest.mark.slow
async def test_mandarin_sample_clean_lesson_unflagged_violation_flagged(client: httpx.AsyncClient, settings: Settings,
                                                                       tmp_path: Path) -> None:
    whisper = asr.get_model(settings.asr_model or None, settings.asr_cpu_threads)  # the pipeline's cached model
    if not whisper.model.is_multilingual:
        pytest.skip(f"the configured speech model ({settings.asr_model or asr.DEFAULT_MODEL}) is English-only; "
                    "Mandarin needs a multilingual one (CLASSGUARD_ASR_MODEL)")
    check(await through_pipeline(client, SAMPLE["zh"], tmp_path))
