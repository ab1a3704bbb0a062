"""The per-file pipeline: probe, decode, transcribe / read / look, apply the policy.

Used by the ``classguard moderate`` command and by the moderation tasks (which run it in a
thread: everything here blocks). One file never takes others down: a bad file comes back as
``status="failed"`` with a plain reason; only configuration errors (a missing speech model, an
invalid policy) raise, because they would fail every file the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moderation import media_prep
from moderation.asr import AsrModelError, AsrOptions, Transcript, transcribe
from moderation.faces import FaceBox, detect_faces
from moderation.media_prep import MediaError, MediaInfo
from moderation.ocr import OcrBox, read_text
from moderation.rules import CarryState, Hit, Policy, PolicyError, TextSpan, evaluate

log = logging.getLogger("classguard.moderation")

AnalysisKind = Literal["audio", "screen", "snapshot"]
KINDS: tuple[str, ...] = ("audio", "screen", "snapshot")


@dataclass(frozen=True)
class FrameText:
    """OCR lines of one sampled frame (``t`` seconds into the file)."""

    t: float
    boxes: list[OcrBox]

    @property
    def text(self) -> str:
        return " ".join(b.text for b in self.boxes)


@dataclass(frozen=True)
class FrameFaces:
    """Faces found in one sampled frame."""

    t: float
    boxes: list[FaceBox]


@dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of the pipeline; defaults suit 10-second slices on a small CPU."""

    model: str | None = None  # ASR model directory or packaged name; None: base
    models_dir: Path | None = None  # where packaged models are assembled; None: the settings'
    cpu_threads: int = 1
    asr: AsrOptions = field(default_factory=AsrOptions)
    # One span per word (needs ``asr.word_timestamps``): hit times to the word, not the segment.
    word_spans: bool = False
    max_frames: int = media_prep.DEFAULT_MAX_FRAMES
    diff_threshold: float = media_prep.DEFAULT_DIFF_THRESHOLD
    sample_fps: float = media_prep.DEFAULT_SAMPLE_FPS
    max_bytes: int | None = media_prep.DEFAULT_MAX_BYTES
    max_duration: float | None = media_prep.DEFAULT_MAX_DURATION
    min_ocr_score: float = 0.5
    locale: str | None = None


@dataclass
class FileAnalysis:
    """Everything the pipeline found in one file, or why it could not.

    ``error_kind`` is "media" for a file that cannot be analysed (retrying will not help) and
    "internal" for an unexpected failure (a retry may). ``carry`` is what to pass with the same
    speaker's next slice; a file without speech (or a failed one) hands the input carry on.
    """

    path: str
    kind: str | None
    status: Literal["ok", "failed"]
    error: str | None = None
    error_kind: Literal["media", "internal"] | None = None
    duration: float | None = None
    transcript: Transcript | None = None
    frames: list[FrameText] = field(default_factory=list)
    faces: list[FrameFaces] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    carry: CarryState | None = None
    policy_version: str = ""
    policy_digest: str = ""
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def transcript_text(self) -> str:
        return self.transcript.text if self.transcript else ""

    @property
    def ocr_text(self) -> str:
        return "\n".join(f.text for f in self.frames if f.boxes)

    @property
    def face_count(self) -> int:
        """Most faces seen in one frame."""
        return max((len(f.boxes) for f in self.faces), default=0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the CLI's ``--json`` line is built from it)."""
        return {
            "path": self.path,
            "kind": self.kind,
            "status": self.status,
            "error": self.error,
            "warnings": self.warnings,
            "duration": self.duration,
            "transcript": self.transcript_text,
            "segments": [
                {"start": s.start, "end": s.end, "text": s.text}
                for s in (self.transcript.segments if self.transcript else [])
            ],
            "ocr_text": self.ocr_text,
            "frames": [
                {
                    "t": f.t,
                    "boxes": [{"text": b.text, "score": b.score, "box": [list(p) for p in b.box]} for b in f.boxes],
                }
                for f in self.frames
            ],
            "faces": [{"t": f.t, "boxes": [list(b) for b in f.boxes]} for f in self.faces],
            "policy_version": self.policy_version,
            "hits": [h.to_dict() for h in self.hits],
            "timings": self.timings,
        }


def _choose_kind(info: MediaInfo, kind: str | None) -> AnalysisKind:
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if kind == "audio" and not info.has_audio:
            raise MediaError(f"{info.path.name}: no audio stream to transcribe")
        if kind in ("screen", "snapshot") and not info.has_video:
            raise MediaError(f"{info.path.name}: no picture to read")
        return kind  # type: ignore[return-value]
    if info.kind == "image":
        return "snapshot"
    return "screen" if info.has_video else "audio"


def _speech_spans(transcript: Transcript, word_spans: bool) -> list[TextSpan]:
    spans: list[TextSpan] = []
    for seg in transcript.segments:
        if word_spans and seg.words:
            spans.extend(TextSpan(w.text, w.start, w.end, "speech") for w in seg.words if w.text)
        else:
            spans.append(TextSpan(seg.text, seg.start, seg.end, "speech"))
    return spans


def _screen_spans(frames: list[FrameText]) -> list[TextSpan]:
    return [
        TextSpan(b.text, f.t, f.t, "screen", box=b.box, frame_time=f.t, score=b.score) for f in frames for b in f.boxes
    ]


def analyze_file(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    policy: Policy | None = None,
    model: str | None = None,
    carry: CarryState | None = None,
    options: AnalysisOptions | None = None,
) -> FileAnalysis:
    """Analyse one media file: speech (audio, or a video's sound track), screen text of sampled
    frames, faces on snapshots, then the policy. ``kind`` None means: decide from the file
    (image -> snapshot, video -> screen + its sound, audio -> audio). Blocks; see ``analyze_file_async``."""
    opts = options or AnalysisOptions()
    pol = policy or Policy.default()
    result = FileAnalysis(
        path=str(path), kind=kind, status="ok", carry=carry, policy_version=pol.version, policy_digest=pol.digest
    )
    timings = result.timings
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 4)
        clock = now

    try:
        info = media_prep.probe(path, max_bytes=opts.max_bytes, max_duration=opts.max_duration)
        chosen = _choose_kind(info, kind)
        result.kind = chosen
        result.duration = info.duration
        lap("probe")
        spans: list[TextSpan] = []
        speech = info.has_audio and chosen in ("audio", "screen")
        if speech:
            audio, warnings = media_prep.decode_audio_16k(
                path, max_bytes=opts.max_bytes, max_duration=opts.max_duration
            )
            result.warnings += warnings
            if result.duration is None:
                result.duration = round(len(audio) / media_prep.SAMPLE_RATE, 3)
            lap("decode_audio")
            result.transcript = transcribe(
                audio, model=model or opts.model, cpu_threads=opts.cpu_threads, options=opts.asr,
                models_dir=opts.models_dir,
            )
            lap("asr")
            spans += _speech_spans(result.transcript, opts.word_spans)
        if info.has_video and chosen in ("screen", "snapshot"):
            frames = media_prep.sample_frames(
                path,
                info=info,
                max_frames=opts.max_frames,
                diff_threshold=opts.diff_threshold,
                fps=opts.sample_fps,
                max_duration=opts.max_duration,
            )
            lap("decode_frames")
            for fr in frames:
                result.frames.append(FrameText(round(fr.t, 3), read_text(fr.image, min_score=opts.min_ocr_score)))
            lap("ocr")
            if chosen == "snapshot":
                result.faces = [FrameFaces(round(fr.t, 3), detect_faces(fr.image)) for fr in frames]
                lap("faces")
            spans += _screen_spans(result.frames)
        hits, next_carry = evaluate(
            spans, carry if speech else None, policy=pol, locale=opts.locale, duration=result.duration
        )
        result.hits = hits
        if speech:
            result.carry = next_carry
        lap("rules")
    except MediaError as exc:
        result.status, result.error, result.error_kind = "failed", exc.detail, "media"
    except (AsrModelError, PolicyError):
        raise
    except Exception as exc:  # one file's surprise must not stop the batch; the reason is kept
        log.exception("analysis of %s failed", path)
        result.status, result.error_kind = "failed", "internal"
        result.error = f"{Path(path).name}: analysis failed ({type(exc).__name__}: {exc})"
    timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 4)
    return result


async def analyze_file_async(path: str | os.PathLike[str], **kwargs: Any) -> FileAnalysis:
    """``analyze_file`` in a worker thread, for async callers (never decode on the event loop)."""
    return await asyncio.to_thread(analyze_file, path, **kwargs)
