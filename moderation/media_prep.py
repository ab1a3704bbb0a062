"""Turns a media file into what the analysers eat: 16 kHz mono float audio and a few sampled frames.

Decoding goes through the ffmpeg binary that ``imageio-ffmpeg`` ships (so a plain
``pip install`` is enough), driven by ``ffmpeg-python``; PATH ``ffmpeg`` is the fallback.
Probing uses PyAV (also pip-only), because ``imageio-ffmpeg`` ships no ``ffprobe``.
Everything here blocks: callers on an event loop use ``asyncio.to_thread``.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import ffmpeg
import numpy as np

from storage.errors import Unprocessable

SAMPLE_RATE = 16_000
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
# Magic numbers of the image formats OpenCV reads here; a file with an image suffix must start with one.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"RIFF")

DEFAULT_MAX_BYTES = 500 * 1024 * 1024
DEFAULT_MAX_DURATION = 3 * 3600.0
DEFAULT_MAX_FRAMES = 8
# Mean absolute grey-level difference (0..255) in the most changed region of a thumbnail that
# counts as a new scene (see ``_scene_change``); video noise stays well under 2.
DEFAULT_DIFF_THRESHOLD = 6.0
DEFAULT_SAMPLE_FPS = 2.0
# Frames wider than this are scaled down before OCR: more pixels cost time, not accuracy.
MAX_FRAME_WIDTH = 1280

MediaKind = Literal["audio", "video", "image"]
StrPath = str | os.PathLike[str]


class MediaError(Unprocessable):
    """A file that cannot be analysed; ``detail`` is a plain reason a person can act on."""


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds, as far as analysis cares."""

    path: Path
    kind: MediaKind
    size_bytes: int
    has_audio: bool
    has_video: bool
    duration: float | None  # seconds; None when the container does not say (e.g. a cut WebM)
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class SampledFrame:
    """One kept frame: its time in seconds from the file start and the BGR pixels."""

    t: float
    image: np.ndarray


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary: the one pip installed with imageio-ffmpeg, else the one on PATH."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:
        found = shutil.which("ffmpeg")
        if found is None:
            raise RuntimeError("no ffmpeg binary: install imageio-ffmpeg or put ffmpeg on PATH") from None
        return found


def _check_file(path: Path, max_bytes: int | None) -> int:
    if not path.exists():
        raise MediaError(f"{path.name}: file not found")
    if not path.is_file():
        raise MediaError(f"{path.name}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise MediaError(f"{path.name}: the file is empty (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise MediaError(f"{path.name}: the file is too large ({size} bytes, limit {max_bytes})")
    return size


def _looks_like_image(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(12)
    if head.startswith(b"RIFF"):
        return head[8:12] == b"WEBP"
    return any(head.startswith(m) for m in _IMAGE_MAGIC)


def probe(
    path: StrPath,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_duration: float | None = DEFAULT_MAX_DURATION,
) -> MediaInfo:
    """Say what ``path`` holds, or raise ``MediaError`` with a plain reason (empty, fake, too big...)."""
    p = Path(path)
    size = _check_file(p, max_bytes)
    if p.suffix.lower() in IMAGE_SUFFIXES or _looks_like_image(p):
        img = _read_image(p)
        return MediaInfo(p, "image", size, False, True, None, img.shape[1], img.shape[0])
    try:
        with av.open(str(p), mode="r") as container:
            audio = [s for s in container.streams if s.type == "audio"]
            video = [s for s in container.streams if s.type == "video"]
            duration = container.duration / av.time_base if container.duration else None
            if duration is None:
                # A stream may know its length when the container does not.
                for s in audio + video:
                    if s.duration is not None and s.time_base is not None:
                        duration = float(s.duration * s.time_base)
                        break
            vctx: Any = video[0].codec_context if video else None
            width = vctx.width if vctx is not None else None
            height = vctx.height if vctx is not None else None
    except av.error.InvalidDataError:
        raise MediaError(f"{p.name}: not a readable audio or video file (unknown or damaged format)") from None
    except av.FFmpegError as exc:
        reason = (getattr(exc, "strerror", None) or _short(exc)).strip().lower()
        if getattr(exc, "errno", None) == errno.EIO:
            reason = "the data ends too early or is damaged"
        raise MediaError(f"{p.name}: not a readable audio or video file ({reason})") from None
    if not audio and not video:
        raise MediaError(f"{p.name}: the file has no audio or video stream")
    if duration is not None and max_duration is not None and duration > max_duration:
        raise MediaError(f"{p.name}: too long ({duration:.0f} s, limit {max_duration:.0f} s)")
    kind: MediaKind = "video" if video else "audio"
    return MediaInfo(p, kind, size, bool(audio), bool(video), duration, width or None, height or None)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


def _read_image(path: Path) -> np.ndarray:
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise MediaError(f"{path.name}: not a readable image (png, jpg, bmp or webp)")
    return img


def _ffmpeg_error(path: Path, stderr: bytes) -> MediaError:
    lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    reason = lines[-1][:200] if lines else "ffmpeg failed"
    return MediaError(f"{path.name}: could not decode ({reason})")


def load_audio_16k(
    path: StrPath,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_duration: float | None = DEFAULT_MAX_DURATION,
) -> np.ndarray:
    """Decode the first audio stream to float32 mono 16 kHz in [-1, 1]; at most ``max_duration`` s.

    A file cut short (a crashed recorder's last segment) yields what could be decoded; a file
    with no decodable audio at all raises ``MediaError``.
    """
    return decode_audio_16k(path, max_bytes=max_bytes, max_duration=max_duration)[0]


def decode_audio_16k(
    path: StrPath,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_duration: float | None = DEFAULT_MAX_DURATION,
) -> tuple[np.ndarray, list[str]]:
    """``load_audio_16k`` plus plain-language warnings (e.g. the file was cut short)."""
    p = Path(path)
    _check_file(p, max_bytes)
    out_kwargs: dict[str, object] = {"format": "s16le", "acodec": "pcm_s16le", "ac": 1, "ar": SAMPLE_RATE}
    if max_duration is not None:
        out_kwargs["t"] = max_duration
    stream = ffmpeg.input(str(p)).output("pipe:", **out_kwargs).global_args("-nostdin", "-v", "error", "-vn")
    proc = subprocess.run(
        [ffmpeg_exe(), *stream.get_args()],
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 and not proc.stdout:
        raise _ffmpeg_error(p, proc.stderr)
    pcm = np.frombuffer(proc.stdout, dtype=np.int16)
    if pcm.size == 0 and proc.returncode != 0:
        raise _ffmpeg_error(p, proc.stderr)
    return pcm.astype(np.float32) / 32768.0, _warnings(proc.stderr)


def _warnings(stderr: bytes) -> list[str]:
    text = stderr.decode(errors="replace").lower()
    out = []
    if "ended prematurely" in text or "truncat" in text or "end of file" in text:
        out.append("the file ends early (cut short); analysed the part that decodes")
    elif "error" in text or "invalid" in text or "corrupt" in text:
        out.append("the file has damaged parts; analysed what decodes")
    return out


_THUMB = (480, 272)
_GRID = 16


def _thumb(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA).astype(np.int16)


def _scene_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey difference of the most changed cell of a 16x16 grid.

    The whole-frame mean would miss what matters on a screen share: a new line of text on a
    static slide changes a few percent of the pixels, well under one grey level on average.
    """
    diff = np.abs(a - b)
    h, w = diff.shape
    cells = diff[: h - h % _GRID, : w - w % _GRID].reshape(_GRID, h // _GRID, _GRID, w // _GRID)
    return float(cells.mean(axis=(1, 3)).max())


def sample_frames(
    path: StrPath,
    *,
    max_frames: int = DEFAULT_MAX_FRAMES,
    diff_threshold: float = DEFAULT_DIFF_THRESHOLD,
    fps: float = DEFAULT_SAMPLE_FPS,
    info: MediaInfo | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    max_duration: float | None = DEFAULT_MAX_DURATION,
) -> list[SampledFrame]:
    """Frames worth reading: the first one, then each scene change, at most ``max_frames``.

    Video is decoded at ``fps`` into a raw BGR pipe and read frame by frame, so memory stays at
    ``max_frames`` frames whatever the length. When more scenes change than ``max_frames`` allows,
    the smallest changes are dropped (the first frame always stays). An image is one frame at t=0.
    """
    if max_frames < 1:
        raise ValueError("max_frames must be at least 1")
    info = info or probe(path, max_bytes=max_bytes, max_duration=max_duration)
    if info.kind == "image":
        return [SampledFrame(0.0, _fit_width(_read_image(info.path)))]
    if not info.has_video or not info.width or not info.height:
        return []
    width, height = info.width, info.height
    if width > MAX_FRAME_WIDTH:
        height = round(height * MAX_FRAME_WIDTH / width / 2) * 2
        width = MAX_FRAME_WIDTH
    out_kwargs: dict[str, object] = {"format": "rawvideo", "pix_fmt": "bgr24", "s": f"{width}x{height}"}
    if max_duration is not None:
        out_kwargs["t"] = max_duration
    stream = (
        ffmpeg.input(str(info.path))
        .filter("fps", fps=fps)
        .output("pipe:", **out_kwargs)
        .global_args("-nostdin", "-v", "error", "-an")
    )
    frame_bytes = width * height * 3
    # (t, image, thumbnail, change vs previous kept) for every kept frame so far.
    kept: list[tuple[float, np.ndarray, np.ndarray, float]] = []
    # stderr goes to a file: a damaged file can make ffmpeg print more than a pipe holds.
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [ffmpeg_exe(), *stream.get_args()],
        stdout=subprocess.PIPE,
        stderr=err,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        index = 0
        while True:
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            image = np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3).copy()
            thumb = _thumb(image)
            t = index / fps
            index += 1
            if not kept:
                kept.append((t, image, thumb, float("inf")))
                continue
            change = _scene_change(thumb, kept[-1][2])
            if change <= diff_threshold:
                continue
            kept.append((t, image, thumb, change))
            if len(kept) > max_frames:
                weakest = min(range(1, len(kept)), key=lambda i: (kept[i][3], kept[i][0]))
                del kept[weakest]
    finally:
        proc.stdout.close()
        proc.wait()
        err.seek(0)
        stderr = err.read()
        err.close()
    if not kept and proc.returncode != 0:
        raise _ffmpeg_error(info.path, stderr)
    if not kept:
        # The fps filter emits nothing for a single-frame video (a camera snapshot): take that frame.
        return _first_frame(info.path, width, height)
    return [SampledFrame(t, img) for t, img, _, _ in kept]


def _first_frame(path: Path, width: int, height: int) -> list[SampledFrame]:
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return [SampledFrame(0.0, frame.to_ndarray(format="bgr24", width=width, height=height))]
    except (av.FFmpegError, ValueError):
        pass
    raise MediaError(f"{path.name}: not a readable picture (damaged, or not an image or video)")


def _fit_width(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= MAX_FRAME_WIDTH:
        return image
    return cv2.resize(image, (MAX_FRAME_WIDTH, int(h * MAX_FRAME_WIDTH / w)), interpolation=cv2.INTER_AREA)
