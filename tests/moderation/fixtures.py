"""Test media made on the spot: espeak-ng speech, OpenCV text images and faces, ffmpeg containers.

Files are content-addressed in a per-user temp directory, so a test session makes each one once
and later sessions reuse them (nothing is committed, nothing to gitignore).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from moderation.media_prep import ffmpeg_exe

CACHE = Path(tempfile.gettempdir()) / f"classguard-test-media-{os.getuid()}"
RATE = 16_000


def _cached(key: object, suffix: str, make: Callable[[Path], object]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    out = CACHE / f"{digest}{suffix}"
    if out.exists() and out.stat().st_size > 0:
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}{suffix}")
    make(tmp)
    tmp.replace(out)  # atomic: parallel sessions never see half a file
    return out


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args], check=True)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    pcm = np.clip(samples, -1.0, 1.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())


def read_wav16k(path: Path) -> np.ndarray:
    """Any wav as 16 kHz mono float32 (through ffmpeg, like the pipeline)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"],
        check=True,
        capture_output=True,
    )
    return np.frombuffer(proc.stdout, dtype=np.int16).astype(np.float32) / 32768.0


def speech(text: str, voice: str = "en-us", speed: int = 140) -> Path:
    """``text`` spoken by espeak-ng, as a 16 kHz mono wav."""

    def make(out: Path) -> None:
        raw = out.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        try:
            write_wav(out, read_wav16k(raw))
        finally:
            raw.unlink(missing_ok=True)

    return _cached(["speech", text, voice, speed], ".wav", make)


def silence(seconds: float) -> Path:
    return _cached(["silence", seconds], ".wav", lambda out: write_wav(out, np.zeros(int(seconds * RATE))))


def concat(parts: Sequence[Path | float]) -> Path:
    """Wavs and silences (floats, seconds) one after another, as one 16 kHz wav."""

    def make(out: Path) -> None:
        chunks = [np.zeros(int(p * RATE), np.float32) if isinstance(p, float) else read_wav16k(p) for p in parts]
        write_wav(out, np.concatenate(chunks) if chunks else np.zeros(0, np.float32))

    return _cached(["concat", [str(p) for p in parts]], ".wav", make)


def transcode(src: Path, suffix: str) -> Path:
    """``src`` re-encoded into ``suffix`` (".webm" Opus, ".mp3", ".m4a"/".mp4" AAC, ".ogg")."""
    codec = {".webm": "libopus", ".ogg": "libopus", ".mp3": "libmp3lame", ".m4a": "aac", ".mp4": "aac"}[suffix]

    def make(out: Path) -> None:
        _ffmpeg("-i", str(src), "-vn", "-c:a", codec, "-ar", "48000" if "opus" in codec else "16000", str(out))

    return _cached(["transcode", str(src), suffix], suffix, make)


def _draw_lines(lines: Sequence[str], size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    y = 110
    for line in lines:
        cv2.putText(img, line, (60, y), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20, 20, 20), 3, cv2.LINE_AA)
        y += 90
    return img


def text_image(lines: Sequence[str], suffix: str = ".png") -> Path:
    """A screen-like image with ``lines`` of dark text on white."""
    return _cached(["text_image", list(lines)], suffix, lambda out: cv2.imwrite(str(out), _draw_lines(lines)))


def face_image(suffix: str = ".jpg") -> Path:
    """A drawn grey face that OpenCV's frontal-face cascade detects (no photos ship offline)."""

    def make(out: Path) -> None:
        size, c = 160, 160
        img = np.full((size * 2, size * 2), 90, np.uint8)
        cv2.ellipse(img, (c, c), (64, 83), 0, 0, 360, 185, -1)
        for dx in (-1, 1):
            ex = c + dx * 27
            cv2.ellipse(img, (ex, c - 32), (16, 4), 0, 0, 360, 60, -1)  # brow
            cv2.ellipse(img, (ex, c - 14), (12, 6), 0, 0, 360, 40, -1)  # eye
        cv2.rectangle(img, (c - 6, c - 13), (c + 6, c + 19), 200, -1)  # nose bridge
        cv2.ellipse(img, (c, c + 22), (13, 5), 0, 0, 360, 120, -1)
        cv2.ellipse(img, (c, c + 45), (22, 6), 0, 0, 360, 70, -1)  # mouth
        cv2.imwrite(str(out), cv2.cvtColor(cv2.GaussianBlur(img, (0, 0), 3), cv2.COLOR_GRAY2BGR))

    return _cached(["face", 1], suffix, make)


def screen_video(
    scenes: Sequence[tuple[float, Sequence[str]]], audio: Path | None = None, suffix: str = ".webm"
) -> Path:
    """A screen share: each scene shows its text lines for its seconds (5 fps); optional sound."""

    def make(out: Path) -> None:
        fps = 5
        vcodec = ["-c:v", "libvpx", "-b:v", "400k"] if suffix == ".webm" else ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
        acodec = ["-c:a", "libopus"] if suffix == ".webm" else ["-c:a", "aac"]
        args = ["-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "1280x720", "-r", str(fps), "-i", "-"]
        if audio is not None:
            args += ["-i", str(audio), *acodec, "-shortest"]
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args, *vcodec, str(out)]
        cmd.remove("-nostdin")  # frames come through stdin
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        assert proc.stdin is not None
        for seconds, lines in scenes:
            frame = _draw_lines(lines).tobytes()
            for _ in range(int(seconds * fps)):
                proc.stdin.write(frame)
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError("ffmpeg failed to make the screen video")

    return _cached(["screen", [[s, list(x)] for s, x in scenes], str(audio), suffix], suffix, make)


def truncated(src: Path, keep: float | int) -> Path:
    """The first part of ``src``: a fraction (float) or a byte count (int)."""

    def make(out: Path) -> None:
        data = src.read_bytes()
        n = int(len(data) * keep) if isinstance(keep, float) else keep
        out.write_bytes(data[:n])

    return _cached(["truncated", str(src), keep], src.suffix, make)


def junk(suffix: str, content: bytes) -> Path:
    """A file named like media that is not (random bytes, text, nothing)."""
    return _cached(["junk", suffix, content.hex()], suffix, lambda out: out.write_bytes(content))
