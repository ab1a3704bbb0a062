"""The heavy work of the decode, speech and vision stages, for ``moderation.pipeline``.

Each function takes the stage's ``Claim`` (the slice facts and the previous stage's output),
does its work with every blocking call in a thread, and returns the stage's output; an
``_analysis`` key in it holds fields for the slice's ``SliceAnalysis`` row. They never touch
the database: the pipeline stores the output in the stage's finishing transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moderation import artefacts
from moderation.media_prep import MediaError, SampledFrame, load_audio_16k, probe, sample_frames
from storage.media import MediaNotFound
from storage.runtime import Runtime

log = logging.getLogger("classguard.moderation.pipeline")

SNAPSHOT_MIN_FACE = 40


class PermanentStageError(Exception):
    """A failure that retrying cannot fix (the media is gone, unreadable, or not what it claims)."""


@dataclass(frozen=True)
class PreviousSlice:
    """The same speaker's slice just before, back to back: its speech may run on into this one."""

    slice_id: uuid.UUID
    media_key: str
    media_deleted: bool


@dataclass(frozen=True)
class Claim:
    """What a stage needs to know about its slice, read in the claim transaction."""

    slice_id: uuid.UUID
    source: str
    media_key: str
    duration_s: float
    media_deleted: bool
    attempt: int
    inputs: dict[str, Any] = field(default_factory=dict)  # the previous stage's output
    previous: PreviousSlice | None = None  # for the asr stage of a mic slice


# --- slots: at most one heavy model call of a kind at a time per process ---------------------------

_slots: dict[tuple[int, str], asyncio.Semaphore] = {}


def slot(kind: str) -> asyncio.Semaphore:
    # ASR (and OCR) saturate a core each; one at a time keeps the relay's event loop and the other
    # stages fed. Semaphores bind to a loop, hence one per loop (Celery workers run their own).
    key = (id(asyncio.get_running_loop()), kind)
    sem = _slots.get(key)
    if sem is None:
        sem = _slots[key] = asyncio.Semaphore(1)
    return sem



# --- the work of each stage --------------------------------------------------------------------------


def _check_media(claim: Claim) -> None:
    if claim.media_deleted:
        raise PermanentStageError("the slice's media was deleted (retention) before it was analysed")


async def _decode_audio(rt: Runtime, claim: Claim) -> np.ndarray:
    _check_media(claim)
    async with artefacts.local_file(rt.media, claim.media_key) as path:
        info = await asyncio.to_thread(probe, path)
        if not info.has_audio:
            raise MediaError(f"{path.name}: the file has no audio stream")
        return await asyncio.to_thread(load_audio_16k, path)


async def _sample(rt: Runtime, claim: Claim, *, first_only: bool = False) -> list[SampledFrame]:
    _check_media(claim)
    async with artefacts.local_file(rt.media, claim.media_key) as path:
        info = await asyncio.to_thread(probe, path)
        if not info.has_video:
            raise MediaError(f"{path.name}: the file has no picture (no video stream, not an image)")
        if first_only:
            frames = await asyncio.to_thread(sample_frames, path, info=info, max_frames=1)
        else:
            frames = await asyncio.to_thread(sample_frames, path, info=info)
        if not frames:
            raise MediaError(f"{path.name}: not a readable picture (no frame could be decoded)")
        return frames


async def work_media(rt: Runtime, claim: Claim) -> dict[str, Any]:
    """Decode once: mic → 16 kHz WAV, screen → sampled frames as PNG, both in the media store."""
    if claim.source == "mic":
        audio = await _decode_audio(rt, claim)
        data = await asyncio.to_thread(artefacts.encode_wav, audio)
        key = artefacts.audio_key(claim.slice_id)
        await rt.media.put(key, data, "audio/wav")
        return {"audio_key": key, "audio_seconds": round(len(audio) / artefacts.SAMPLE_RATE, 3)}
    frames = await _sample(rt, claim)
    out = []
    for i, frame in enumerate(frames):
        png = await asyncio.to_thread(artefacts.encode_png, frame.image)
        key = artefacts.frame_key(claim.slice_id, i)
        await rt.media.put(key, png, "image/png")
        out.append({"key": key, "t": round(frame.t, 3)})
    return {"frames": out}


async def _derived_audio(rt: Runtime, claim: Claim) -> np.ndarray:
    key = claim.inputs.get("audio_key")
    if key:
        try:
            data = await rt.media.get_bytes(key)
            return await asyncio.to_thread(artefacts.decode_wav, data)
        except MediaNotFound:
            log.info("slice %s: derived audio gone, decoding the slice again", claim.slice_id)
    return await _decode_audio(rt, claim)


async def _derived_frames(rt: Runtime, claim: Claim) -> list[SampledFrame]:
    listed = claim.inputs.get("frames")
    if listed is not None:
        try:
            frames = []
            for f in listed:
                data = await rt.media.get_bytes(f["key"])
                frames.append(SampledFrame(float(f["t"]), await asyncio.to_thread(artefacts.decode_png, data)))
            return frames
        except MediaNotFound:
            log.info("slice %s: derived frames gone, sampling the slice again", claim.slice_id)
    return await _sample(rt, claim)


# Decoded audio of the last few slices this process transcribed, for the same speaker's next
# slice (its carried tail) without decoding the file again. Small: ~0.3 MB per 10 s slice.
_RECENT_AUDIO: OrderedDict[uuid.UUID, np.ndarray] = OrderedDict()
RECENT_AUDIO_SLICES = 16


def _remember_audio(slice_id: uuid.UUID, audio: np.ndarray) -> None:
    _RECENT_AUDIO[slice_id] = audio
    _RECENT_AUDIO.move_to_end(slice_id)
    while len(_RECENT_AUDIO) > RECENT_AUDIO_SLICES:
        _RECENT_AUDIO.popitem(last=False)


async def _previous_audio(rt: Runtime, claim: Claim) -> np.ndarray | None:
    """The previous slice's 16 kHz audio (memory, its derived WAV, or its media), or None."""
    prev = claim.previous
    if prev is None:
        return None
    if prev.slice_id in _RECENT_AUDIO:
        return _RECENT_AUDIO[prev.slice_id]
    try:
        data = await rt.media.get_bytes(artefacts.audio_key(prev.slice_id))
        return await asyncio.to_thread(artefacts.decode_wav, data)
    except MediaNotFound:
        pass
    if prev.media_deleted:
        return None
    try:
        async with artefacts.local_file(rt.media, prev.media_key) as path:
            return await asyncio.to_thread(load_audio_16k, path)
    except (MediaNotFound, MediaError) as exc:
        # Without it this slice is heard alone, as before; not a reason to fail the slice.
        log.info("slice %s: previous slice's audio unavailable (%s); no carried speech", claim.slice_id, exc)
        return None


async def work_asr(rt: Runtime, claim: Claim) -> dict[str, Any]:
    from moderation.asr import DEFAULT_MODEL
    from moderation.speech_stream import own_text, transcribe_continuing

    audio = await _derived_audio(rt, claim)
    previous = await _previous_audio(rt, claim)
    settings = rt.settings
    async with slot("asr"):
        heard = await asyncio.to_thread(
            transcribe_continuing, audio, previous, model=settings.asr_model or None,
            cpu_threads=settings.asr_cpu_threads, models_dir=settings.speech_models_dir)
    _remember_audio(claim.slice_id, audio)
    transcript = heard.transcript
    # Segments before 0 are the previous slice's speech heard again, whole: context for the rules.
    segments = [{"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments]
    model = settings.asr_model or DEFAULT_MODEL
    out: dict[str, Any] = {
        "segments": len(segments),
        "language": transcript.language,
        "carried_seconds": heard.carried_seconds,
        "_analysis": {"language": transcript.language, "transcript": own_text(transcript.segments),
                      "segments": segments, "model": model[-200:]},
    }
    if heard.carried_seconds and claim.previous is not None:
        out["carried_from"] = str(claim.previous.slice_id)
    return out


async def work_vision(rt: Runtime, claim: Claim) -> dict[str, Any]:
    if claim.source == "snapshot":
        from moderation.faces import detect_faces

        frames = await _sample(rt, claim, first_only=True)
        async with slot("vision"):
            faces = await asyncio.to_thread(detect_faces, frames[0].image, min_size=SNAPSHOT_MIN_FACE)
        return {"faces": len(faces), "_analysis": {"faces": len(faces)}}
    from moderation.ocr import read_text

    frames = await _derived_frames(rt, claim)
    lines: list[dict[str, Any]] = []
    async with slot("vision"):
        for frame in frames:
            for box in await asyncio.to_thread(read_text, frame.image):
                lines.append({"t": frame.t, "text": box.text, "score": box.score,
                              "box": [list(p) for p in box.box]})
    return {"frames": len(frames), "lines": len(lines), "_analysis": {"ocr": lines}}


