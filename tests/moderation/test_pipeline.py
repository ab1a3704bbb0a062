"""The moderation pipeline through the real stack: slices made by the classroom service from
espeak-ng speech, the in-process dispatcher running media → asr → rules, flags read back
through the staff API (which writes the access log)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from classroom.models import Slice
from moderation import events
from moderation.models import Flag, StageRun
from storage.access_log.models import AccessLogEntry
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation import fixtures
from tests.moderation.slice_factory import add_raw_slice, add_slice, live_room

pytestmark = pytest.mark.slow

PHONE_TALK = "Hello class. If you have questions, call me on WhatsApp, my number is 5 5 5 1 2 3 4 5 6 7."
HARMLESS = "Today we will learn about fractions. One half is larger than one quarter."


def webm(text: str, pad: float = 1.0) -> Any:
    """Speech as the recorder stores it: a WebM/Opus file."""
    return fixtures.transcode(fixtures.concat([fixtures.speech(text), pad]), ".webm")


async def drain() -> None:
    await get_runtime().dispatcher.join(timeout=300)  # type: ignore[attr-defined]


async def analysis(client: httpx.AsyncClient, staff: Any, slice_id: uuid.UUID) -> dict[str, Any]:
    r = await client.get(f"/api/v1/moderation/slices/{slice_id}/analysis",
                         params={"reason": "reviewing a flagged class"}, headers=staff.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_mic_slice_is_transcribed_and_flagged_with_evidence(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid = await add_slice(room, webm(PHONE_TALK))
    clean = await add_slice(room, webm(HARMLESS), user_id=room.speakers[1])
    await drain()
    mod = await logged_in(client, "moderator")

    got = await analysis(client, mod, sid)
    assert got["slice"]["status"] == "done", got["slice"]
    assert [s["status"] for s in got["slice"]["stages"]] == ["done", "done", "done"]
    assert "whatsapp" in got["transcript"].lower().replace(" ", "") or "number" in got["transcript"].lower()
    phone = [f for f in got["flags"] if f["rule_id"] == "contact.phone"]
    assert len(phone) == 1, got["flags"]
    f = phone[0]
    assert f["category"] == "off_platform_contact"
    assert f["slice_id"] == str(sid) and f["user_id"] == str(room.speakers[0])
    assert f["session_id"] == str(room.session_id) and f["source"] == "mic"
    assert 0 <= f["start_ms"] <= f["end_ms"] <= 12_000
    assert f["evidence"]["slice_id"] == str(sid)
    assert f["evidence"]["start_s"] * 1000 == pytest.approx(f["start_ms"], abs=1)
    assert "[" in f["quote"] and "number" in f["quote"]  # the hit in brackets, with its context
    assert len(f["evidence"]["value"]) >= 7
    assert f["policy_version"] == got["policy_version"] and f["rule_version"] == "1"

    other = await analysis(client, mod, clean)
    assert other["slice"]["status"] == "done" and other["flags"] == []
    assert "fraction" in other["transcript"].lower()

    # Derived artefacts (decoded audio) do not outlive the pipeline.
    assert await get_runtime().media.list("derived/") == []
    # Each staff read is in the access log, about the speaker, with the reason.
    async with unit_of_work(get_runtime().sessionmaker) as s:
        entries = (await s.scalars(select(AccessLogEntry).where(AccessLogEntry.resource_type == "slice_analysis")
                                   .order_by(AccessLogEntry.seq))).all()
    assert [(e.resource_id, e.subject_id, e.reason) for e in entries] == [
        (str(sid), room.speakers[0], "reviewing a flagged class"),
        (str(clean), room.speakers[1], "reviewing a flagged class"),
    ]
