"""Factories for review tests: flagged slices stored the way the pipeline stores them (slice row
and media, analysis, flags, then ``announce_flags_stored`` in the same transaction, so review's
real hook makes the item), and small helpers around the review API."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from classroom import service as classroom
from moderation.events import announce_flags_stored
from moderation.models import SEVERITY_RANK, Flag, SliceAnalysis
from moderation.review.models import CaseFlag, ReviewItem
from storage.db import unit_of_work, utcnow
from storage.runtime import get_runtime
from tests.factories import TestUser
from tests.moderation import fixtures
from tests.moderation.slice_factory import Room, add_raw_slice, live_room

_n = itertools.count(1)
SPOKEN = "Hello class. If you have questions, my number is 5 5 5 1 2 3 4 5 6 7, message me there."


# Slice bytes that only look like WebM: for tests whose pipeline never decodes the media.
NOT_DECODED = b"\x1aE\xdf\xa3 not decoded in this test"


@dataclass
class FlagSpec:
    """One rule hit; defaults are a phone number said aloud."""

    category: str = "off_platform_contact"
    rule_id: str = "contact.phone"
    severity: str = "high"
    start_ms: int = 2000
    end_ms: int = 5000
    quote: str = "my number is [5551234567]"
    source: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    auto_action: str | None = None
    rule_version: str = "1"
    policy_version: str = "test-policy-1"
    confidence: float = 0.9


def speech_webm(text: str = SPOKEN) -> bytes:
    """Real speech (espeak-ng) as the recorder stores it: WebM/Opus."""
    return Path(fixtures.transcode(fixtures.concat([fixtures.speech(text), 0.5]), ".webm")).read_bytes()


def screen_webm(lines: list[str] | None = None) -> bytes:
    lines = lines or ["Lesson 3: fractions", "WeChat: teacher_li 13812345678"]
    return Path(fixtures.screen_video([(3.0, lines)])).read_bytes()


async def flag_slice(room: Room, *flags: FlagSpec, user_id: uuid.UUID | None = None, source: str = "mic",
                     media: bytes | None = None, segments: list[dict[str, Any]] | None = None,
                     ocr: list[dict[str, Any]] | None = None) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A slice of ``user_id`` (default: the room's first student) with these flags, announced to
    review through the pipeline's hook. Returns (slice id, flag ids)."""
    user = user_id or room.speakers[-1]
    data = media if media is not None else (speech_webm() if source == "mic" else screen_webm())
    content_type = "audio/webm" if source == "mic" else "video/webm"
    slice_id = await add_raw_slice(room, data, user_id=user, source=source, content_type=content_type,
                                   announce=False)
    specs = flags or (FlagSpec(),)
    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as session:
        session.add(SliceAnalysis(
            slice_id=slice_id, language="en",
            transcript=" ".join(s["text"] for s in segments or []) if segments else SPOKEN,
            segments=segments if segments is not None else [
                {"start": 0.0, "end": 1.8, "text": "Hello class."},
                {"start": 1.8, "end": 5.5, "text": "If you have questions, my number is 5551234567,"},
                {"start": 5.5, "end": 7.0, "text": "message me there."},
            ],
            ocr=ocr or [], model="test", policy_version="test-policy-1",
        ))
        rows = []
        for spec in specs:
            row = Flag(
                id=uuid.uuid4(), slice_id=slice_id, user_id=user, session_id=room.session_id, class_id=room.class_id,
                source=spec.source or source, category=spec.category, rule_id=spec.rule_id,
                rule_version=spec.rule_version, policy_version=spec.policy_version, severity=spec.severity,
                severity_rank=SEVERITY_RANK[spec.severity], confidence=spec.confidence, start_ms=spec.start_ms,
                end_ms=spec.end_ms, quote=spec.quote, evidence=spec.evidence, auto_action=spec.auto_action,
                automated_detection=True, fingerprint=f"fp{next(_n)}",
            )
            session.add(row)
            rows.append(row)
        await session.flush()
        await announce_flags_stored(session, slice_id, [r.id for r in rows])
    return slice_id, [r.id for r in rows]


async def join(room: Room, user_id: uuid.UUID, *, mic_on: bool = True) -> None:
    """Record the user as a participant of the live session (with the mic switched on)."""
    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as session:
        await classroom.participant_joined(session, room.session_id, user_id, "student")
        if mic_on:
            await classroom.record_source_change(session, room.session_id, user_id, "mic", True, utcnow(),
                                                 "participant")


async def expire_lease(item_id: str) -> None:
    """Let an item's lease run out (as if its lease_seconds had passed)."""
    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as session:
        await session.execute(update(ReviewItem).where(ReviewItem.id == uuid.UUID(item_id))
                              .values(lease_expires_at=utcnow()))


async def case_ids_of_slice(slice_id: uuid.UUID) -> list[str]:
    """The cases holding a flag of this slice (a slice with flags of two categories is in two)."""
    async with unit_of_work(get_runtime().sessionmaker) as session:
        rows = (await session.scalars(select(CaseFlag.item_id).where(CaseFlag.slice_id == slice_id)
                                      .distinct())).all()
    return [str(r) for r in rows]


async def item_of_slice(client: httpx.AsyncClient, staff: TestUser, slice_id: uuid.UUID) -> dict[str, Any]:
    """The open case (queue row) that holds this slice's flags."""
    r = await client.get("/api/v1/moderation/queue", params={"limit": 200}, headers=staff.headers)
    assert r.status_code == 200, r.text
    ids = await case_ids_of_slice(slice_id)
    found = [i for i in r.json()["items"] if i["id"] in ids]
    assert found, f"no open item for slice {slice_id}"
    return found[0]


async def claim(client: httpx.AsyncClient, staff: TestUser, item_id: str) -> dict[str, Any]:
    r = await client.post(f"/api/v1/moderation/items/{item_id}/claim", headers=staff.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def decision(outcome: str = "confirm", action: str | None = "warn", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"outcome": outcome, "reason": "shared a phone number to move the class off-platform"}
    if outcome == "confirm":
        body["action"] = action
        body["explanation"] = ("You said a phone number in class and asked students to contact you there. "
                               "Lessons and payments must stay on the platform.")
    body.update(extra)
    return body


async def decide(client: httpx.AsyncClient, staff: TestUser, item_id: str, body: dict[str, Any],
                 key: str | None = None, expect: int = 200) -> dict[str, Any]:
    headers = dict(staff.headers)
    if key:
        headers["Idempotency-Key"] = key
    r = await client.post(f"/api/v1/moderation/items/{item_id}/decision", json=body, headers=headers)
    assert r.status_code == expect, r.text
    out: dict[str, Any] = r.json()
    return out


__all__ = ["FlagSpec", "Room", "case_ids_of_slice", "claim", "decide", "decision", "expire_lease", "flag_slice",
           "item_of_slice", "join", "live_room"]
