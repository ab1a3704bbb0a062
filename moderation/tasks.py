"""The pipeline's background jobs, one per stage and queue, so each stage can scale on its own
(ASR on GPU nodes, OCR elsewhere). Each takes the slice id and reloads everything; see
``moderation.pipeline`` for what makes them idempotent and resumable."""

from __future__ import annotations

from moderation.models import Stage
from moderation.pipeline import run_stage
from storage.jobs import task


@task("moderation.media", queue="media")
async def media(slice_id: str) -> None:
    """Decode a slice once: 16 kHz audio for ASR, sampled frames for OCR."""
    await run_stage(slice_id, Stage.media)


@task("moderation.asr", queue="asr")
async def asr(slice_id: str) -> None:
    """Transcribe a mic slice."""
    await run_stage(slice_id, Stage.asr)


@task("moderation.vision", queue="vision")
async def vision(slice_id: str) -> None:
    """Read the text on a screen slice's frames, or count the faces on a camera snapshot."""
    await run_stage(slice_id, Stage.vision)


@task("moderation.rules", queue="rules")
async def rules(slice_id: str) -> None:
    """Apply the active policy and store the flags (with the speaker's carry from the last slice)."""
    await run_stage(slice_id, Stage.rules)
