"""Background jobs of the classroom."""

from __future__ import annotations

from storage.jobs import task
from storage.runtime import get_runtime


@task("classroom.delete_media", queue="media")
async def delete_media(keys: list[str]) -> None:
    """Delete recordings whose rows were already marked deleted (idempotent: missing keys are fine)."""
    media = get_runtime().media
    for key in keys:
        await media.delete(key)
