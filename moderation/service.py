"""Rules of the moderation pipeline's domain: start a slice's pipeline, resume unfinished ones,
retry failed ones, install policies, and let staff read an analysis (logged). Services flush,
never commit."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from accounts.models import User
from classguard.settings import Settings
from classroom.models import Slice
from moderation import pipeline
from moderation import repository as repo
from moderation.models import PolicyVersion, StageRun
from moderation.policy_store import active_policy, file_policy
from moderation.rules import Policy, PolicyError
from moderation.schemas import (
    FlagOut,
    PolicyOut,
    ScreenTextOut,
    SliceAnalysisOut,
    SliceStateOut,
    StageRunOut,
    TranscriptSegmentOut,
)
from storage.access_log.service import record_access
from storage.errors import Conflict, NotFound, Unprocessable

log = logging.getLogger("classguard.moderation")


# --- the pipeline's life ---------------------------------------------------------------------------


async def on_slice_created(session: AsyncSession, slice_id: uuid.UUID) -> None:
    """Hook for ``classroom.events.slice_created_hooks``: start the pipeline of a new slice.

    Runs in the transaction that inserts the slice; the first stage's job leaves after its commit.
    """
    sl = await repo.get_slice(session, slice_id)
    if sl is None:
        raise NotFound(f"slice {slice_id} not found")
    await pipeline.start(session, sl)


async def resume_unfinished(session: AsyncSession, *, idle_since: datetime | None = None,
                            reset_running: bool = False) -> int:
    """Send again the first unfinished stage of every unfinished slice (restart, lost jobs).

    ``reset_running``: stages left ``running`` belong to a process that is gone (embedded mode
    at startup: this process is the only worker). ``idle_since``: only slices nobody touched
    since then (scale-out mode, where other workers may be busy with the rest).
    """
    if reset_running:
        n = await repo.reset_running(session)
        if n:
            log.info("%d interrupted pipeline stages will run again", n)
    ids = await repo.unfinished_slice_ids(session, idle_since=idle_since)
    return await pipeline.resume(session, ids)


async def retry_slice(session: AsyncSession, slice_id: uuid.UUID) -> SliceStateOut:
    """Run a failed slice again from its first unfinished stage (attempts start over)."""
    sl = await repo.lock_slice(session, slice_id)
    if sl is None:
        raise NotFound(f"slice {slice_id} not found")
    if sl.status != "failed":
        raise Conflict(f"slice {slice_id} is {sl.status}; only failed slices can be retried")
    await repo.reset_unfinished_stages(session, slice_id)
    sl.status = "pending"
    sl.error = None
    await session.flush()
    await pipeline.resume(session, [slice_id])
    return await slice_state(session, sl)


async def slice_state(session: AsyncSession, sl: Slice, runs: list[StageRun] | None = None) -> SliceStateOut:
    if runs is None:
        runs = await repo.stage_runs(session, [sl.id])
    order = {s.value: i for i, s in enumerate(pipeline.plan_of(sl.source))}
    runs = sorted(runs, key=lambda r: order.get(r.stage, 99))
    out = SliceStateOut.model_validate(sl)
    out.stages = [StageRunOut.model_validate(r) for r in runs]
    return out


async def failed_slices(session: AsyncSession, limit: int, offset: int) -> list[SliceStateOut]:
    """Slices that failed, newest first, with each stage's error."""
    slices = await repo.failed_slices(session, limit, offset)
    runs = await repo.stage_runs(session, [s.id for s in slices])
    by_slice: dict[uuid.UUID, list[StageRun]] = {}
    for r in runs:
        by_slice.setdefault(r.slice_id, []).append(r)
    return [await slice_state(session, s, by_slice.get(s.id, [])) for s in slices]


# --- staff reads -----------------------------------------------------------------------------------


async def read_analysis(session: AsyncSession, staff: User, slice_id: uuid.UUID, reason: str) -> SliceAnalysisOut:
    """A slice's transcript, screen text and flags for staff; the read is logged with its reason."""
    sl = await repo.get_slice(session, slice_id)
    if sl is None:
        raise NotFound(f"slice {slice_id} not found")
    # Logged before the data leaves: if the log cannot be written, the read fails too.
    await record_access(session, actor_id=staff.id, actor_role=staff.role, action="read",
                        resource_type="slice_analysis", resource_id=sl.id, subject_id=sl.user_id, reason=reason)
    analysis = await repo.get_analysis(session, slice_id)
    flags = await repo.flags_of_slice(session, slice_id)
    return SliceAnalysisOut(
        slice=await slice_state(session, sl),
        language=analysis.language if analysis else None,
        transcript=analysis.transcript if analysis else "",
        segments=[TranscriptSegmentOut.model_validate(s) for s in (analysis.segments if analysis else [])],
        screen_text=[ScreenTextOut.model_validate(o) for o in (analysis.ocr if analysis else [])],
        faces=analysis.faces if analysis else None,
        model=analysis.model if analysis else None,
        policy_version=analysis.policy_version if analysis else None,
        flags=[FlagOut.model_validate(f) for f in flags],
    )


# --- policies --------------------------------------------------------------------------------------


def _policy_out(policy: Policy, origin: str, row: PolicyVersion | None = None) -> PolicyOut:
    return PolicyOut(version=policy.version, digest=policy.digest, origin=origin,  # type: ignore[arg-type]
                     rules=len(policy.rules), installed_at=row.created_at if row else None,
                     installed_by=row.created_by if row else None)


async def current_policy(session: AsyncSession, settings: Settings) -> PolicyOut:
    policy, origin = await active_policy(session, settings)
    row = await repo.newest_active_policy(session) if origin == "database" else None
    return _policy_out(policy, origin, row)


async def install_policy(session: AsyncSession, settings: Settings, admin: User,
                         body: dict[str, Any]) -> tuple[PolicyOut, bool]:
    """Validate and install a policy version; it applies to slices evaluated from now on.

    Returns (policy, created). Installing the same version with the same content again is a
    no-op; a version string already used for other content is refused, because flags name
    the version they were made under and it must mean one thing.
    """
    try:
        policy = Policy.from_dict(body, source="the request")
    except PolicyError as exc:
        raise Unprocessable(exc.detail) from None  # lists every problem, with its place
    existing = await repo.get_policy_version(session, policy.version)
    if existing is not None:
        if Policy.from_dict(existing.body).digest != policy.digest:
            raise Conflict(f"policy version {policy.version!r} is already installed with other rules; "
                           "give the new rules a new version")
        return _policy_out(policy, "database", existing), False
    shipped = file_policy(settings)
    if shipped.version == policy.version and shipped.digest != policy.digest:
        raise Conflict(f"policy version {policy.version!r} is the shipped policy's; give the new rules a new version")
    row = PolicyVersion(version=policy.version, body=body, created_by=admin.id, active=True)
    await repo.add_policy_version(session, row)
    log.info("policy %s (%s) installed by %s", policy.version, policy.digest, admin.id)
    return _policy_out(policy, "database", row), True
