"""The moderation pipeline through the real stack: slices made by the classroom service from
espeak-ng speech, the in-process dispatcher running media → asr → rules, flags read back
through the staff API (which writes the access log)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from classroom.models import Slice
from moderation import events
from moderation.models import Flag, StageRun
from moderation.rules import Policy
from storage.access_log.models import AccessLogEntry
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation import fixtures
from tests.moderation.slice_factory import add_raw_slice, add_slice, live_room

pytestmark = pytest.mark.slow

# Worded so that tiny.en writes the digits as digits (it hears "five five" as "fine, fine").
PHONE_TALK = ("Hello class. If you want extra practice you can text me, "
              "my number is four one five two zero three seven eight six six.")
HARMLESS = "Today we will learn about fractions. One half is larger than one quarter."
MANDARIN = Path(__file__).parent / "audio" / "zh-lesson-email.opus"  # see audio/README.md


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
    mandarin = await add_slice(room, fixtures.transcode(MANDARIN, ".webm"), user_id=room.speakers[1])
    await drain()
    mod = await logged_in(client, "moderator")

    got = await analysis(client, mod, sid)
    assert got["slice"]["status"] == "done", got["slice"]
    assert got["language"] == "en"
    assert [s["status"] for s in got["slice"]["stages"]] == ["done", "done", "done"]
    assert "whatsapp" in got["transcript"].lower().replace(" ", "") or "number" in got["transcript"].lower()
    phone = [f for f in got["flags"] if f["rule_id"] == "contact.phone"]
    assert len(phone) == 1, [(x["rule_id"], x["quote"], x["evidence"]) for x in got["flags"]]
    f = phone[0]
    assert f["category"] == "off_platform_contact"
    assert f["slice_id"] == str(sid) and f["user_id"] == str(room.speakers[0])
    assert f["session_id"] == str(room.session_id) and f["source"] == "mic"
    assert 0 <= f["start_ms"] <= f["end_ms"] <= 12_000
    assert f["evidence"]["slice_id"] == str(sid)
    assert f["evidence"]["start_s"] * 1000 == pytest.approx(f["start_ms"], abs=1)
    assert "[" in f["quote"] and "number" in f["quote"]  # the hit in brackets, with its context
    assert len(f["evidence"]["value"]) >= 7
    shipped = Policy.default().rule("contact.phone").spec.version
    assert f["policy_version"] == got["policy_version"] and f["rule_version"] == str(shipped)

    other = await analysis(client, mod, clean)
    assert other["slice"]["status"] == "done" and other["flags"] == []
    assert "fraction" in other["transcript"].lower()
    # Mandarin: detected per slice, stored with the transcript, in Simplified characters.
    zh = await analysis(client, mod, mandarin)
    assert zh["slice"]["status"] == "done" and zh["language"] == "zh" and zh["flags"] == []
    assert "学习" in zh["transcript"] and "學" not in zh["transcript"]

    # Derived artefacts (decoded audio) do not outlive the pipeline.
    assert await get_runtime().media.list("derived/") == []
    # Each staff read is in the access log, about the speaker, with the reason.
    async with unit_of_work(get_runtime().sessionmaker) as s:
        entries = (await s.scalars(select(AccessLogEntry).where(AccessLogEntry.resource_type == "slice_analysis")
                                   .order_by(AccessLogEntry.seq))).all()
    assert [(e.resource_id, e.subject_id, e.reason) for e in entries] == [
        (str(sid), room.speakers[0], "reviewing a flagged class"),
        (str(clean), room.speakers[1], "reviewing a flagged class"),
        (str(mandarin), room.speakers[1], "reviewing a flagged class"),
    ]


async def test_phone_number_split_across_two_slices_of_one_speaker_is_caught_once(client: httpx.AsyncClient) -> None:
    room = await live_room()
    first = await add_slice(room, webm(
        "Thanks for the lesson. If you want extra practice you can text me, my number is four one five", pad=0.3))
    second = await add_slice(room, webm("two zero three seven eight six six. See you next week.", pad=0.3))
    # Another speaker's digits at the same time are not glued to this speaker's sentence.
    await add_slice(room, webm("seven seven one two three four"), user_id=room.speakers[1])
    await drain()
    admin = await logged_in(client, "admin")

    a, b = await analysis(client, admin, first), await analysis(client, admin, second)
    assert a["slice"]["status"] == b["slice"]["status"] == "done"
    assert [f for f in a["flags"] if f["category"] == "off_platform_contact"] == []
    phone = [f for f in b["flags"] if f["rule_id"] == "contact.phone"]
    assert len(phone) == 1, b["flags"]
    ev = phone[0]["evidence"]
    assert ev["continues_previous_slice"] is True and ev["previous_slice_id"] == str(first)
    assert ev["previous_slice_from"] < 0 and ev["value"].endswith("037866")
    assert ev["slice_ids"] == [str(first), str(second)]  # the evidence spans both slices
    async with unit_of_work(get_runtime().sessionmaker) as s:
        assert await s.scalar(select(func.count()).select_from(Flag).where(Flag.rule_id == "contact.phone")) == 1


async def test_rerunning_every_stage_never_duplicates_flags_or_announcements(client: httpx.AsyncClient) -> None:
    seen: list[tuple[uuid.UUID, list[uuid.UUID]]] = []

    async def hook(_session: Any, slice_id: uuid.UUID, flag_ids: list[uuid.UUID]) -> None:
        seen.append((slice_id, flag_ids))

    events.flags_stored_hooks.append(hook)
    try:
        room = await live_room()
        sid = await add_slice(room, webm(PHONE_TALK))
        await drain()
        rt = get_runtime()
        async with unit_of_work(rt.sessionmaker) as s:
            before = [(f.id, f.rule_id, f.start_ms, f.quote) for f in
                      (await s.scalars(select(Flag).where(Flag.slice_id == sid).order_by(Flag.id))).all()]
        assert before and len(seen) == 1 and sorted(seen[0][1]) == sorted(f[0] for f in before)

        # Repeated jobs of a finished slice are no-ops.
        for name in ("moderation.media", "moderation.asr", "moderation.rules", "moderation.rules"):
            await rt.dispatcher.submit(name, {"slice_id": str(sid)})
        await drain()
        # A redelivery that finds every stage unfinished (as after a crash) redoes all of it,
        # with duplicate jobs of every stage in flight at once.
        async with unit_of_work(rt.sessionmaker) as s:
            await s.execute(update(StageRun).where(StageRun.slice_id == sid).values(status="pending"))
            await s.execute(update(Slice).where(Slice.id == sid).values(status="processing"))
        for name in ("moderation.media", "moderation.media", "moderation.asr", "moderation.rules"):
            await rt.dispatcher.submit(name, {"slice_id": str(sid)})
        await drain()

        async with unit_of_work(rt.sessionmaker) as s:
            after = [(f.id, f.rule_id, f.start_ms, f.quote) for f in
                     (await s.scalars(select(Flag).where(Flag.slice_id == sid).order_by(Flag.id))).all()]
            runs = {r.stage: r for r in (await s.scalars(select(StageRun).where(StageRun.slice_id == sid))).all()}
            status = await s.scalar(select(Slice.status).where(Slice.id == sid))
        assert after == before
        assert len(seen) == 1  # nothing new stored, nothing announced again
        assert status == "done" and {r.status for r in runs.values()} == {"done"}
        assert runs["media"].attempts >= 2 and runs["rules"].attempts >= 2
        assert await rt.media.list("derived/") == []
    finally:
        events.flags_stored_hooks.remove(hook)


BAD_MEDIA = [
    ("mic", b"", "empty"),
    ("mic", b"this is not a recording, just text " * 20, "not a readable"),
    ("snapshot", b"GIF87a not really an image at all", "not a readable picture"),
]


async def test_bad_media_fails_at_once_with_a_reason_and_the_next_slice_still_runs(client: httpx.AsyncClient) -> None:
    room = await live_room()
    bad = [await add_raw_slice(room, data, source=src) for src, data, _ in BAD_MEDIA]
    truncated = fixtures.truncated(webm(PHONE_TALK), 300).read_bytes()
    bad.append(await add_raw_slice(room, truncated))
    screen_without_picture = webm(HARMLESS).read_bytes()
    bad.append(await add_raw_slice(room, screen_without_picture, source="screen", content_type="video/webm"))
    good = await add_slice(room, webm(PHONE_TALK), user_id=room.speakers[1])
    await drain()

    admin = await logged_in(client, "admin")
    r = await client.get("/api/v1/moderation/slices/failed", headers=admin.headers)
    assert r.status_code == 200, r.text
    failed = {row["id"]: row for row in r.json()}
    assert set(failed) == {str(b) for b in bad}
    reasons = [failed[str(b)]["error"] for b in bad]
    for (_, _, words), reason in zip(BAD_MEDIA, reasons, strict=False):
        assert words in reason, reason
    assert "damaged" in reasons[3] or "not a readable" in reasons[3]
    assert "no picture" in reasons[4]
    for b in bad:
        stages = failed[str(b)]["stages"]
        broken = [s for s in stages if s["status"] == "failed"]
        assert len(broken) == 1 and broken[0]["attempts"] == 1  # permanent: no pointless retries
        assert broken[0]["error"] and failed[str(b)]["error"].startswith(broken[0]["stage"] + ":")
        assert all(s["status"] == "pending" for s in stages if s is not broken[0])

    g = await analysis(client, admin, good)
    assert g["slice"]["status"] == "done" and any(f["rule_id"] == "contact.phone" for f in g["flags"])

    mod = await logged_in(client, "moderator")
    assert (await client.get("/api/v1/moderation/slices/failed", headers=mod.headers)).status_code == 403
    client.cookies.clear()  # logging in set a session cookie
    assert (await client.get("/api/v1/moderation/slices/failed")).status_code == 401


async def test_transient_failures_are_retried_then_the_slice_fails_and_an_admin_retry_finishes_it(
    client: httpx.AsyncClient, tmp_path: Any
) -> None:
    rt = get_runtime()
    good_model = rt.settings.asr_model
    rt.settings.asr_model = str(tmp_path / "no-such-model")  # a real deployment mistake, not a mock
    room = await live_room()
    sid = await add_slice(room, webm(PHONE_TALK))
    await drain()
    admin = await logged_in(client, "admin")
    failed = (await client.get("/api/v1/moderation/slices/failed", headers=admin.headers)).json()
    assert [f["id"] for f in failed] == [str(sid)]
    asr = next(s for s in failed[0]["stages"] if s["stage"] == "asr")
    assert asr["status"] == "failed" and asr["attempts"] == rt.settings.task_max_attempts
    assert "not a local directory" in failed[0]["error"] and failed[0]["error"].startswith("asr:")

    rt.settings.asr_model = good_model  # the operator fixes the setting and retries
    r = await client.post(f"/api/v1/moderation/slices/{sid}/retry", headers=admin.headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    await drain()
    got = await analysis(client, admin, sid)
    assert got["slice"]["status"] == "done" and got["slice"]["error"] is None
    assert [s["stage"] for s in got["slice"]["stages"]] == ["media", "asr", "rules"]
    assert any(f["rule_id"] == "contact.phone" for f in got["flags"])

    again = await client.post(f"/api/v1/moderation/slices/{sid}/retry", headers=admin.headers)
    assert again.status_code == 409 and again.json()["error"] == "Conflict"
    missing = await client.post(f"/api/v1/moderation/slices/{uuid.uuid4()}/retry", headers=admin.headers)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    teacher = await logged_in(client, "teacher")
    assert (await client.post(f"/api/v1/moderation/slices/{sid}/retry", headers=teacher.headers)).status_code == 403


async def test_screen_text_and_camera_snapshots(client: httpx.AsyncClient, tmp_path: Any) -> None:
    room = await live_room()
    screen = fixtures.screen_video([(2.0, ["Homework: page 12"]),
                                    (2.0, ["Add me on WeChat: teacher_li", "13812345678"])])
    sid = await add_slice(room, screen, source="screen", duration=4.0)
    face = tmp_path / "face.webm"
    fixtures._ffmpeg("-loop", "1", "-i", str(fixtures.face_image()), "-frames:v", "1", "-c:v", "libvpx", str(face))
    empty = tmp_path / "empty.webm"
    fixtures._ffmpeg("-loop", "1", "-i", str(fixtures.text_image(["nobody here"])), "-frames:v", "1",
                     "-c:v", "libvpx", str(empty))
    snap = await add_slice(room, face, source="snapshot", duration=0.0)
    nobody = await add_slice(room, empty, source="snapshot", duration=0.0)
    await drain()
    admin = await logged_in(client, "admin")

    got = await analysis(client, admin, sid)
    assert got["slice"]["status"] == "done", got["slice"]
    assert [s["stage"] for s in got["slice"]["stages"]] == ["media", "vision", "rules"]
    assert any("13812345678" in line["text"] for line in got["screen_text"])
    flags = [f for f in got["flags"] if f["category"] == "off_platform_contact"]
    assert flags and all(f["source"] == "screen" and f["evidence"]["read_from"] == "screen" for f in flags)
    assert any(f["evidence"].get("boxes") for f in flags)
    assert all(f["start_ms"] >= 1500 for f in flags)  # shown from the second scene on

    s1, s2 = await analysis(client, admin, snap), await analysis(client, admin, nobody)
    assert [s["stage"] for s in s1["slice"]["stages"]] == ["vision", "rules"]
    assert (s1["slice"]["status"], s1["faces"], s1["flags"]) == ("done", 1, [])
    assert (s2["slice"]["status"], s2["faces"], s2["flags"]) == ("done", 0, [])
