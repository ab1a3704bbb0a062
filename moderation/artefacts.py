"""Intermediate artefacts of the pipeline in the media store, so stages can run on other machines.

The media stage writes what later stages eat under ``derived/<slice id>/``: ``audio16k.wav``
(16 kHz mono PCM for the ASR stage) and ``frames/<i>.png`` (sampled screen frames for the
vision stage). They exist only while the slice is in the pipeline: the pipeline deletes them
when the slice is done or failed (they are copies of personal data that retention would not
otherwise know about). A stage that finds them missing (e.g. a retried slice) re-derives them
from the slice's own media. Encoding and decoding block; callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
import numpy as np

from storage.media import MediaNotFound, MediaStore

SAMPLE_RATE = 16_000


def derived_prefix(slice_id: uuid.UUID) -> str:
    return f"derived/{slice_id}/"


def audio_key(slice_id: uuid.UUID) -> str:
    return f"{derived_prefix(slice_id)}audio16k.wav"


def frame_key(slice_id: uuid.UUID, index: int) -> str:
    return f"{derived_prefix(slice_id)}frames/{index:03d}.png"


def encode_wav(audio: np.ndarray) -> bytes:
    """float32 [-1, 1] mono 16 kHz → 16-bit PCM WAV bytes."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def decode_wav(data: bytes) -> np.ndarray:
    """The inverse of ``encode_wav``."""
    with wave.open(io.BytesIO(data), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError("derived audio is not 16 kHz mono 16-bit")
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode a frame as PNG")
    return bytes(buf.tobytes())


def decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("derived frame is not a readable PNG")
    return image


@asynccontextmanager
async def local_file(media: MediaStore, key: str) -> AsyncIterator[Path]:
    """A local path for a media object: the file itself on a local store, else a temp copy."""
    path_of = getattr(media, "path_of", None)
    if path_of is not None:
        path = Path(path_of(key))
        if not await asyncio.to_thread(path.is_file):
            raise MediaNotFound(f"no media object {key!r}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cg-slice-") as tmp:
        dest = Path(tmp) / Path(key).name
        await media.download_to(key, dest)
        yield dest


async def delete_derived(media: MediaStore, slice_id: uuid.UUID) -> int:
    """Delete every intermediate artefact of a slice; returns how many there were."""
    keys = await media.list(derived_prefix(slice_id))
    for key in keys:
        await media.delete(key)
    return len(keys)
