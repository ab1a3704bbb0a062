"""Stage orchestration: which stages a slice goes through, and how one stage runs exactly-once-ish.

Plans: mic ``media → asr → rules``; screen ``media → vision → rules``; snapshot ``vision → rules``.
Each stage of each slice has one ``StageRun`` row, the idempotency key. Running a stage is:

1. claim (one transaction): skip if the slice is finished or the stage is done (then only make
   sure the next stage is on its way); wait if the previous stage is not done; mark it
   ``running`` and count the attempt;
2. work, outside any transaction, heavy parts in threads (decode, ASR, OCR);
3. finish (one transaction, slice row locked): store the results, mark the stage ``done`` and
   enqueue the next stage, which leaves only after the commit.

Delivery is at-least-once; two runs of one stage (a redelivered job, a restarted process) do
the same work and write the same results: analyses are overwritten with equal values, flags are
inserted with ``ON CONFLICT DO NOTHING``, and only a run that inserted a flag announces it.

Failures: ``MediaError`` and a missing media file are permanent — the slice fails at once with
the plain reason. Anything else is transient: the stage goes back to ``pending`` and the error
is raised so the dispatcher retries with backoff; after ``task_max_attempts`` attempts (counted
in the database, so restarts do not reset them) the slice fails with the last error.

The rules stage reads a speaker's speech across slice boundaries: for a mic slice it starts
only once the same speaker's previous mic slice in the session (if it ended less than
``CARRY_GAP_SECONDS`` before) is finished, takes that slice's carry, and stores its own for the
next one (status ``waiting`` meanwhile). A slice reaching ``done`` or ``failed`` wakes the next
slice's rules stage. Screen and snapshot slices stand alone.

Intermediate artefacts (16 kHz audio, sampled frames) go to the media store under
``derived/<slice id>/`` so the ASR and vision stages can run on other machines; they are deleted
when the slice ends (see ``moderation.artefacts``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from classroom.models import Slice
from moderation import artefacts
from moderation import repository as repo
from moderation.events import announce_flags_stored
from moderation.media_prep import MediaError
from moderation.models import SEVERITY_RANK, SliceAnalysis, Stage, StageRun
from moderation.policy_store import active_policy
from moderation.rules import CarryState, Hit, TextSpan
from moderation.speech_stream import MAX_GAP_SECONDS, evaluate_continuing
from moderation.stages import Claim, PermanentStageError, PreviousSlice, work_asr, work_media, work_vision
from storage import jobs
from storage.db import unit_of_work, utcnow
from storage.media import MediaNotFound
from storage.runtime import Runtime, get_runtime

log = logging.getLogger("classguard.moderation.pipeline")

PLANS: dict[str, tuple[Stage, ...]] = {
    "mic": (Stage.media, Stage.asr, Stage.rules),
    "screen": (Stage.media, Stage.vision, Stage.rules),
    "snapshot": (Stage.vision, Stage.rules),
}
TASK_OF: dict[Stage, str] = {
    Stage.media: "moderation.media",
    Stage.asr: "moderation.asr",
    Stage.vision: "moderation.vision",
    Stage.rules: "moderation.rules",
}
TERMINAL = ("done", "failed")
# A speaker's previous slice counts as "the same stretch of speech" if it ended this close before.
CARRY_GAP_SECONDS = 15.0
# Only speech runs on across slices; a screen frame is complete in itself (see ``moderation.rules``).
CARRY_SOURCES = frozenset({"mic"})


# --- plan helpers ----------------------------------------------------------------------------------


def plan_of(source: str) -> tuple[Stage, ...]:
    return PLANS.get(source, ())


def next_stage(source: str, stage: Stage) -> Stage | None:
    plan = plan_of(source)
    i = plan.index(stage)
    return plan[i + 1] if i + 1 < len(plan) else None


def first_unfinished(source: str, runs: dict[str, StageRun]) -> Stage | None:
    for stage in plan_of(source):
        run = runs.get(stage.value)
        if run is None or run.status != "done":
            return stage
    return None


def enqueue_stage(session: AsyncSession, stage: Stage, slice_id: uuid.UUID) -> None:
    jobs.enqueue(session, TASK_OF[stage], slice_id=str(slice_id))


async def start(session: AsyncSession, sl: Slice) -> None:
    """Create the slice's stage rows and send its first stage (after the caller's commit)."""
    plan = plan_of(sl.source)
    if not plan:
        log.warning("slice %s has source %r, which no pipeline plan covers", sl.id, sl.source)
        return
    await repo.ensure_stage_runs(session, sl.id, [s.value for s in plan])
    enqueue_stage(session, plan[0], sl.id)


async def resume(session: AsyncSession, slice_ids: list[uuid.UUID]) -> int:
    """Send the first unfinished stage of each slice again; returns how many were sent."""
    runs = await repo.stage_runs(session, slice_ids)
    by_slice: dict[uuid.UUID, dict[str, StageRun]] = {}
    for r in runs:
        by_slice.setdefault(r.slice_id, {})[r.stage] = r
    sent = 0
    for sid in slice_ids:
        sl = await repo.get_slice(session, sid)
        if sl is None or sl.status in TERMINAL:
            continue
        await repo.ensure_stage_runs(session, sid, [s.value for s in plan_of(sl.source)])
        stage = first_unfinished(sl.source, by_slice.get(sid, {}))
        if stage is not None:
            enqueue_stage(session, stage, sid)
            sent += 1
    return sent


async def _wake_next_rules(session: AsyncSession, sl: Slice) -> None:
    """The next slice of this speaker may wait for this one's carry: nudge its rules stage.

    Sent whenever that stage is not done, not only when it says ``waiting``: its claim may be
    deciding to wait right now, concurrently; the nudge runs after our commit and re-checks
    under the slice lock, so it cannot be lost. A needless nudge is a no-op claim.
    """
    nxt = await repo.next_slice(session, sl)
    if nxt is None or nxt.status in TERMINAL or Stage.rules not in plan_of(nxt.source):
        return
    run = await repo.get_stage_run(session, nxt.id, Stage.rules.value)
    if run is not None and run.status != "done":
        enqueue_stage(session, Stage.rules, nxt.id)


def _gap_seconds(before: Slice, after: Slice) -> float:
    return (after.started_at - before.ended_at).total_seconds()


# --- running one stage -----------------------------------------------------------------------------


async def run_stage(slice_id: str, stage: Stage) -> None:
    """Run ``stage`` of a slice (the body of every stage task, in-process or Celery)."""
    rt = get_runtime()
    sid = uuid.UUID(slice_id)
    claim = await _claim(rt, sid, stage)
    if claim is None:
        return
    try:
        result = await WORK[stage](rt, claim)
    except (MediaError, MediaNotFound, PermanentStageError) as exc:
        await _fail(rt, sid, stage, _reason(exc), permanent=True)
        return
    except Exception as exc:
        if not await _fail(rt, sid, stage, _reason(exc), permanent=False):
            raise
        log.exception("slice %s: stage %s failed for good", sid, stage.value)
        return
    if stage is Stage.rules:
        return  # the rules stage stores its results in its own finishing transaction
    await _finish(rt, claim, stage, result)


def _reason(exc: BaseException) -> str:
    detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
    return str(detail)[:2000]


async def _claim(rt: Runtime, sid: uuid.UUID, stage: Stage) -> Claim | None:
    async with unit_of_work(rt.sessionmaker) as session:
        sl = await repo.lock_slice(session, sid)
        if sl is None or sl.status in TERMINAL:
            return None  # deleted (e.g. account cancelled) or already finished
        plan = plan_of(sl.source)
        if stage not in plan:
            log.warning("slice %s (%s) has no stage %s", sid, sl.source, stage.value)
            return None
        runs = {r.stage: r for r in await repo.stage_runs(session, [sid])}
        if any(s.value not in runs for s in plan):  # e.g. a slice stored before the pipeline was wired
            await repo.ensure_stage_runs(session, sid, [s.value for s in plan])
            runs = {r.stage: r for r in await repo.stage_runs(session, [sid])}
        run = runs[stage.value]
        if run.status == "done":
            # A repeated job: make sure the chain goes on (the original's enqueue may have been lost).
            nxt = next_stage(sl.source, stage)
            if nxt is not None and runs[nxt.value].status != "done":
                enqueue_stage(session, nxt, sid)
            return None
        if run.status == "failed":
            return None
        i = plan.index(stage)
        prev = runs[plan[i - 1].value] if i > 0 else None
        if prev is not None and prev.status != "done":
            return None  # the previous stage enqueues this one when it is done
        if stage is Stage.rules and await _must_wait_for_previous(session, sl):
            run.status = "waiting"
            await session.flush()
            return None
        run.status = "running"
        run.attempts += 1
        run.started_at = utcnow()
        run.finished_at = None
        sl.status = "processing"
        previous = await _back_to_back(session, sl) if stage is Stage.asr else None
        await session.flush()
        return Claim(slice_id=sid, source=sl.source, media_key=sl.media_key, duration_s=sl.duration_s,
                     media_deleted=sl.media_deleted_at is not None, attempt=run.attempts,
                     inputs=dict(prev.output or {}) if prev is not None else {}, previous=previous)


async def _back_to_back(session: AsyncSession, sl: Slice) -> PreviousSlice | None:
    """The speaker's previous slice if this one follows it without a gap (the recorder rolled
    over mid-speech, not the microphone switched off and on): its speech may run on into this."""
    if sl.source not in CARRY_SOURCES:
        return None
    prev = await repo.previous_slice(session, sl)
    if prev is None or _gap_seconds(prev, sl) > MAX_GAP_SECONDS:
        return None
    return PreviousSlice(prev.id, prev.media_key, prev.media_deleted_at is not None)


async def _must_wait_for_previous(session: AsyncSession, sl: Slice) -> bool:
    if sl.source not in CARRY_SOURCES:
        return False
    prev = await repo.previous_slice(session, sl)
    if prev is None or _gap_seconds(prev, sl) > CARRY_GAP_SECONDS:
        return False
    return prev.status not in TERMINAL


async def _fail(rt: Runtime, sid: uuid.UUID, stage: Stage, reason: str, *, permanent: bool) -> bool:
    """Record a failed attempt; returns True if the slice is now failed for good."""
    final = permanent
    async with unit_of_work(rt.sessionmaker) as session:
        sl = await repo.lock_slice(session, sid)
        run = await repo.get_stage_run(session, sid, stage.value)
        if sl is None or run is None or sl.status in TERMINAL or run.status == "done":
            return True  # gone, or finished meanwhile by another run of the same stage
        run.error = reason
        final = final or run.attempts >= rt.settings.task_max_attempts
        if final:
            run.status = "failed"
            run.finished_at = utcnow()
            sl.status = "failed"
            sl.error = f"{stage.value}: {reason}"
            await _wake_next_rules(session, sl)
        else:
            run.status = "pending"
        await session.flush()
    if final:
        log.warning("slice %s failed at stage %s: %s", sid, stage.value, reason)
        await artefacts.delete_derived(rt.media, sid)
    else:
        log.info("slice %s: stage %s attempt failed (%s); will retry", sid, stage.value, reason)
    return final


async def _finish(rt: Runtime, claim: Claim, stage: Stage, result: dict[str, Any]) -> None:
    async with unit_of_work(rt.sessionmaker) as session:
        sl = await repo.lock_slice(session, claim.slice_id)
        run = await repo.get_stage_run(session, claim.slice_id, stage.value)
        if sl is None or run is None or sl.status in TERMINAL or run.status == "done":
            return  # finished meanwhile by another run of the same stage
        analysis_update = result.pop("_analysis", None)
        if analysis_update:
            analysis = await repo.analysis_for_update(session, claim.slice_id)
            for key, value in analysis_update.items():
                setattr(analysis, key, value)
            analysis.updated_at = utcnow()
        run.output = result
        run.status = "done"
        run.error = None
        run.finished_at = utcnow()
        nxt = next_stage(sl.source, stage)
        if nxt is not None:
            enqueue_stage(session, nxt, claim.slice_id)
        await session.flush()


# --- the rules stage: evaluate and store in one transaction --------------------------------------------


def spans_of(analysis: SliceAnalysis | None) -> list[TextSpan]:
    """What the rules read: transcript segments (speech) and OCR lines (screen)."""
    if analysis is None:
        return []
    spans = [TextSpan(str(s["text"]), float(s["start"]), float(s["end"])) for s in analysis.segments or []]
    for line in analysis.ocr or []:
        t = float(line["t"])
        box = tuple((float(p[0]), float(p[1])) for p in line.get("box") or ()) or None
        spans.append(TextSpan(str(line["text"]), t, t, source="screen", box=box, frame_time=t,
                              score=float(line.get("score", 1.0))))
    return spans


async def work_rules(rt: Runtime, claim: Claim) -> dict[str, Any]:
    """Evaluate the policy and store flags, all in one transaction with the stage's completion."""
    new_ids: list[uuid.UUID] = []
    async with unit_of_work(rt.sessionmaker) as session:
        sl = await repo.lock_slice(session, claim.slice_id)
        run = await repo.get_stage_run(session, claim.slice_id, Stage.rules.value)
        if sl is None or run is None or sl.status in TERMINAL or run.status == "done":
            return {}
        analysis = await repo.analysis_for_update(session, claim.slice_id)
        policy, _origin = await active_policy(session, rt.settings)
        output: dict[str, Any] = {"policy_version": policy.version, "policy_digest": policy.digest}
        if sl.source == "snapshot":
            # Presence only: a camera with nobody in front of it is a note, never a flag.
            output["face_absent"] = analysis.faces == 0
            hits: list[Hit] = []
        else:
            carry, prev_id = await _carry_for(session, sl)
            carried = float(claim.inputs.get("carried_seconds") or 0.0)
            carried_from = claim.inputs.get("carried_from")
            previous_hits = []
            if carried_from:
                previous_hits = [(f.rule_id, str((f.evidence or {}).get("value", "")).lower())
                                 for f in await repo.flags_of_slice(session, uuid.UUID(carried_from))]
            spans = spans_of(analysis)
            hits, next_carry = await asyncio.to_thread(
                lambda: evaluate_continuing(spans, carried, carry, policy=policy, duration=sl.duration_s,
                                            previous_hits=previous_hits, previous_slice=carried_from))
            output["carry"] = next_carry.to_dict()
            for hit in hits:
                flag_id = await repo.insert_flag(session, _flag_values(sl, hit, policy.version, prev_id))
                if flag_id is not None:
                    new_ids.append(flag_id)
        output["hits"] = len(hits)
        analysis.policy_version = policy.version
        analysis.updated_at = utcnow()
        run.output = output
        run.status = "done"
        run.error = None
        run.finished_at = utcnow()
        sl.status = "done"
        sl.error = None
        await session.flush()
        await announce_flags_stored(session, sl.id, new_ids)
        await _wake_next_rules(session, sl)
    await artefacts.delete_derived(rt.media, claim.slice_id)
    return output


async def _carry_for(session: AsyncSession, sl: Slice) -> tuple[CarryState | None, uuid.UUID | None]:
    if sl.source not in CARRY_SOURCES:
        return None, None
    prev = await repo.previous_slice(session, sl)
    if prev is None or prev.status != "done" or _gap_seconds(prev, sl) > CARRY_GAP_SECONDS:
        return None, None
    run = await repo.get_stage_run(session, prev.id, Stage.rules.value)
    if run is None or not run.output:
        return None, None
    return CarryState.from_dict(run.output.get("carry")), prev.id


def _flag_values(sl: Slice, hit: Hit, policy_version: str, prev_id: uuid.UUID | None) -> dict[str, Any]:
    evidence = dict(hit.evidence)
    evidence.update({"slice_id": str(sl.id), "start_s": hit.start, "end_s": hit.end, "read_from": hit.source})
    if evidence.get("continues_previous_slice") and prev_id is not None:
        evidence.setdefault("previous_slice_id", str(prev_id))
    # The slices the evidence falls in, in time order (a hit across a boundary spans two).
    before = [evidence["previous_slice_id"]] if evidence.get("previous_slice_id") else []
    evidence["slice_ids"] = [*before, str(sl.id)]
    return {
        "id": uuid.uuid4(), "created_at": utcnow(), "slice_id": sl.id, "user_id": sl.user_id,
        "session_id": sl.session_id, "class_id": sl.class_id, "source": sl.source,
        "category": hit.category, "rule_id": hit.rule_id, "rule_version": str(hit.rule_version),
        "policy_version": policy_version, "severity": hit.severity,
        "severity_rank": SEVERITY_RANK.get(hit.severity, 0), "confidence": float(hit.confidence),
        "start_ms": round(hit.start * 1000), "end_ms": round(hit.end * 1000),
        "quote": hit.quote, "evidence": evidence, "auto_action": hit.auto_action,
        "automated_detection": True, "fingerprint": hit.fingerprint,
    }


WORK: dict[Stage, Callable[[Runtime, Claim], Awaitable[dict[str, Any]]]] = {
    Stage.media: work_media,
    Stage.asr: work_asr,
    Stage.vision: work_vision,
    Stage.rules: work_rules,
}


def stage_times(runs: list[StageRun]) -> dict[str, tuple[datetime | None, datetime | None]]:
    """(started, finished) per stage, for admin views and benchmarks."""
    return {r.stage: (r.started_at, r.finished_at) for r in runs}
