"""Classes through the HTTP API: create, enroll, join rules (403/409), moderation controls,
the consent/recording trail, SDP checks and who may list slices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from tests.classroom.class_factories import attend, join, make_class
from tests.factories import logged_in


async def _poll(fetch: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.1)


def _is_error(r: httpx.Response, status: int, name: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == name and body["detail"], body


# --- classes and enrollment -------------------------------------------------------------------------


async def test_teacher_creates_and_lists_students_enroll(client: httpx.AsyncClient) -> None:
    setup = await make_class(client, students=2)
    r = await client.get("/api/v1/classes", headers=setup.teacher.headers)
    assert [c["id"] for c in r.json()] == [setup.id]
    assert r.json()[0]["scheduled_start"].startswith("2030-01-07T09:00:00")
    assert r.json()[0]["live_session_id"] is None

    r = await client.get("/api/v1/classes", headers=setup.student.headers)
    assert [c["id"] for c in r.json()] == [setup.id]
    r = await client.get(f"/api/v1/classes/{setup.id}/enrollments", headers=setup.teacher.headers)
    assert {e["student_id"] for e in r.json()} == {s.id for s in setup.students}

    # enrolling twice is harmless; a student cannot see the roster; another teacher lists nothing
    r = await client.post(f"/api/v1/classes/{setup.id}/enroll", headers=setup.student.headers)
    assert r.status_code == 200
    _is_error(await client.get(f"/api/v1/classes/{setup.id}/enrollments", headers=setup.student.headers),
              403, "Forbidden")
    other = await logged_in(client, "teacher")
    assert (await client.get("/api/v1/classes", headers=other.headers)).json() == []


async def test_class_creation_rules(client: httpx.AsyncClient) -> None:
    student = await logged_in(client, "student")
    teacher = await logged_in(client, "teacher")
    _is_error(await client.post("/api/v1/classes", json={"title": "x"}, headers=student.headers), 403, "Forbidden")
    client.cookies.clear()  # the login cookie would authenticate the next request
    _is_error(await client.post("/api/v1/classes", json={"title": "x"}), 401, "Unauthorized")
    for body in ({"title": ""},
                 {"title": "x", "scheduled_start": "2030-01-01T10:00:00Z", "scheduled_end": "2030-01-01T09:00:00Z"},
                 {"title": "x", "scheduled_start": "2030-01-01T10:00:00"}):
        _is_error(await client.post("/api/v1/classes", json=body, headers=teacher.headers), 422, "ValidationError")
    setup = await make_class(client, teacher, students=0)
    _is_error(await client.post(f"/api/v1/classes/{setup.id}/enroll", headers=teacher.headers), 403, "Forbidden")
    _is_error(await client.post("/api/v1/classes/00000000-0000-0000-0000-000000000000/enroll",
                                headers=student.headers), 404, "NotFound")


# --- joining -------------------------------------------------------------------------------------------


async def test_only_teacher_and_enrolled_students_join(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    teacher_join = await join(client, setup.id, setup.teacher)
    sid = teacher_join["session"]["id"]
    assert teacher_join["role"] == "teacher" and teacher_join["signal_path"] == f"/api/v1/sessions/{sid}/signal"
    student_join = await join(client, setup.id, setup.student)
    assert student_join["session"]["id"] == sid and student_join["role"] == "student"

    for outsider in (await logged_in(client, "student"), await logged_in(client, "teacher"),
                     await logged_in(client, "moderator")):
        _is_error(await client.post(f"/api/v1/classes/{setup.id}/join", headers=outsider.headers), 403, "Forbidden")
        _is_error(await client.post(f"/api/v1/sessions/{sid}/join", headers=outsider.headers), 403, "Forbidden")

    r = await client.get(f"/api/v1/classes/{setup.id}", headers=setup.student.headers)
    assert r.json()["live_session_id"] == sid


async def test_ended_session_is_409_and_next_join_starts_a_new_one(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    r = await client.post(f"/api/v1/classes/{setup.id}/session", headers=setup.teacher.headers)
    assert r.status_code == 201
    sid = r.json()["id"]
    r = await client.post(f"/api/v1/classes/{setup.id}/session", headers=setup.teacher.headers)
    assert r.status_code == 200 and r.json()["id"] == sid
    _is_error(await client.post(f"/api/v1/classes/{setup.id}/session", headers=setup.student.headers),
              403, "Forbidden")

    r = await client.post(f"/api/v1/classes/{setup.id}/session/end", headers=setup.teacher.headers,
                          json={"reason": "lesson over"})
    assert r.status_code == 200 and r.json()["status"] == "ended"
    assert r.json()["ended_by"] == setup.teacher.id and r.json()["end_reason"] == "lesson over"

    _is_error(await client.post(f"/api/v1/sessions/{sid}/join", headers=setup.student.headers), 409, "Conflict")
    outsider = await logged_in(client, "student")
    _is_error(await client.post(f"/api/v1/sessions/{sid}/join", headers=outsider.headers), 403, "Forbidden")
    _is_error(await client.post(f"/api/v1/sessions/{sid}/end", headers=setup.teacher.headers), 409, "Conflict")
    _is_error(await client.post(f"/api/v1/classes/{setup.id}/session/end", headers=setup.teacher.headers),
              409, "Conflict")

    again = await join(client, setup.id, setup.student)
    assert again["session"]["id"] != sid and again["session"]["status"] == "live"


# --- controls and the recording trail, on the app's real relay -------------------------------------


async def test_moderator_mutes_unmutes_removes_and_ends(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    moderator = await logged_in(client, "moderator")
    base = f"/api/v1/sessions/{sid}"

    # not joined yet: nothing to mute
    _is_error(await client.post(f"{base}/participants/{setup.student.id}/mute", headers=moderator.headers),
              404, "NotFound")

    student = await attend(sid, setup.student, "student")
    try:
        student.bot.publish_mic()

        async def events() -> list[dict[str, Any]]:
            r = await client.get(f"{base}/recording-events", headers=setup.teacher.headers)
            assert r.status_code == 200, r.text
            result: list[dict[str, Any]] = r.json()
            return result

        trail = await _poll(events, lambda ev: any(e["enabled"] for e in ev))
        assert trail[-1] | {"id": None, "at": None} == {
            "id": None, "at": None, "session_id": sid, "user_id": setup.student.id, "source": "mic",
            "enabled": True, "by": "participant", "by_user_id": None, "reason": None}

        # a student may not moderate
        _is_error(await client.post(f"{base}/participants/{setup.student.id}/mute", headers=setup.student.headers),
                  403, "Forbidden")
        r = await client.post(f"{base}/participants/{setup.student.id}/mute", headers=moderator.headers,
                              json={"reason": "shared a phone number"})
        assert r.status_code == 200 and r.json()["applied_live"] is True
        await student.bot.wait_for(lambda: any(m.get("type") == "muted" and m["muted"]
                                               for m in student.bot.messages))
        trail = await _poll(events, lambda ev: len(ev) >= 2)
        assert (trail[-1]["enabled"], trail[-1]["by"], trail[-1]["by_user_id"], trail[-1]["reason"]) == (
            False, "moderator", moderator.id, "shared a phone number")

        r = await client.post(f"{base}/participants/{setup.student.id}/unmute", headers=setup.teacher.headers)
        assert r.status_code == 200
        trail = await _poll(events, lambda ev: len(ev) >= 3)
        assert (trail[-1]["enabled"], trail[-1]["by"], trail[-1]["by_user_id"]) == (True, "moderator",
                                                                                    setup.teacher.id)

        r = await client.post(f"{base}/participants/{setup.student.id}/remove", headers=moderator.headers,
                              json={"reason": "abuse"})
        assert r.status_code == 200 and r.json()["applied_live"] is True
        await asyncio.wait_for(student.bot.ended.wait(), 10)
        assert any(m.get("type") == "removed" for m in student.bot.messages)
        trail = await _poll(events, lambda ev: len(ev) >= 4)
        assert (trail[-1]["enabled"], trail[-1]["by"], trail[-1]["reason"]) == (False, "moderator", "abuse")
        assert len(trail) == 4  # the relay confirming the removal adds no duplicate "off"
    finally:
        await student.leave()

    # removed: cannot come back into this session
    _is_error(await client.post(f"{base}/join", headers=setup.student.headers), 403, "Forbidden")
    r = await client.get(f"{base}/participants", headers=setup.teacher.headers)
    stays = [p for p in r.json() if p["user_id"] == setup.student.id]
    assert stays and stays[-1]["left_reason"] == "removed" and stays[-1]["left_at"]

    # the student sees only their own events; an outsider none
    r = await client.get(f"{base}/recording-events", headers=setup.student.headers)
    assert r.status_code == 200 and {e["user_id"] for e in r.json()} == {setup.student.id}
    outsider = await logged_in(client, "student")
    _is_error(await client.get(f"{base}/recording-events", headers=outsider.headers), 403, "Forbidden")

    r = await client.post(f"{base}/end", headers=moderator.headers, json={"reason": "policy"})
    assert r.status_code == 200 and r.json()["ended_by"] == moderator.id
    _is_error(await client.post(f"{base}/participants/{setup.teacher.id}/mute", headers=moderator.headers),
              409, "Conflict")


async def test_ending_disconnects_everyone_and_closes_the_trail(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    teacher = await attend(sid, setup.teacher, "teacher")
    student = await attend(sid, setup.student, "student")
    try:
        student.bot.publish_mic()
        await student.bot.wait_for(lambda: any(p["recording"] for p in student.bot.participants))
        r = await client.post(f"/api/v1/sessions/{sid}/end", headers=setup.teacher.headers)
        assert r.status_code == 200
        await asyncio.wait_for(asyncio.gather(teacher.bot.ended.wait(), student.bot.ended.wait()), 10)
        assert any(m.get("type") == "ended" for m in student.bot.messages)
    finally:
        await student.leave()
        await teacher.leave()
    r = await client.get(f"/api/v1/sessions/{sid}/recording-events", headers=setup.teacher.headers)
    mic = [(e["enabled"], e["by"]) for e in r.json() if e["user_id"] == setup.student.id]
    assert mic == [(True, "participant"), (False, "moderator")]
    r = await client.get(f"/api/v1/sessions/{sid}/participants", headers=setup.teacher.headers)
    assert all(p["left_at"] for p in r.json()) and {p["left_reason"] for p in r.json()} == {"ended"}


# --- SDP, ICE, slices access ---------------------------------------------------------------------------


async def _offer(kind_codecs: dict[str, list[str]]) -> str:
    pc = RTCPeerConnection()
    try:
        for kind, mimes in kind_codecs.items():
            track = AudioStreamTrack() if kind == "audio" else VideoStreamTrack()
            t = pc.addTransceiver(track, "sendonly")
            t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType in mimes])
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


@pytest.mark.parametrize("sdp", ["", "not sdp at all", "v=0\r\nm=audio x\r\n"])
async def test_malformed_sdp_is_400(client: httpx.AsyncClient, sdp: str) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    r = await client.post(f"/api/v1/sessions/{sid}/offer-check", json={"sdp": sdp}, headers=setup.teacher.headers)
    _is_error(r, 400, "BadRequest")
    assert "SDP" in r.json()["detail"]


async def test_offer_without_usable_codec_names_the_accepted_ones(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    url = f"/api/v1/sessions/{sid}/offer-check"
    r = await client.post(url, json={"sdp": await _offer({"audio": ["audio/PCMU"]})}, headers=setup.teacher.headers)
    _is_error(r, 400, "BadRequest")
    assert "Opus" in r.json()["detail"] and "VP8" in r.json()["detail"]
    good = await _offer({"audio": ["audio/opus"], "video": ["video/VP8", "video/rtx"]})
    r = await client.post(url, json={"sdp": good}, headers=setup.teacher.headers)
    assert r.status_code == 200 and [m["kind"] for m in r.json()["media"]] == ["audio", "video"]


async def test_ice_config_and_slice_listing_is_staff_only(client: httpx.AsyncClient) -> None:
    setup = await make_class(client)
    r = await client.get("/api/v1/config/ice", headers=setup.student.headers)
    assert r.status_code == 200 and r.json() == {"ice_servers": []}
    client.cookies.clear()
    _is_error(await client.get("/api/v1/config/ice"), 401, "Unauthorized")
    sid = (await join(client, setup.id, setup.teacher))["session"]["id"]
    _is_error(await client.get(f"/api/v1/sessions/{sid}/slices", headers=setup.teacher.headers), 403, "Forbidden")
    _is_error(await client.get("/api/v1/slices", headers=setup.student.headers), 403, "Forbidden")
    moderator = await logged_in(client, "moderator")
    assert (await client.get(f"/api/v1/sessions/{sid}/slices", headers=moderator.headers)).json() == []
    _is_error(await client.get("/api/v1/slices", params={"status": "nope"}, headers=moderator.headers),
              422, "ValidationError")
    r = await client.get("/api/v1/ops/relay-stats", headers=moderator.headers)
    assert r.status_code == 200 and r.json()["rss_bytes"] > 0 and r.json()["relay"]["running"] is True


@pytest.mark.postgres
async def test_join_rules_on_postgres(pg_client: httpx.AsyncClient) -> None:
    setup = await make_class(pg_client)
    sid = (await join(pg_client, setup.id, setup.teacher))["session"]["id"]
    assert (await join(pg_client, setup.id, setup.student))["session"]["id"] == sid
    outsider = await logged_in(pg_client, "student")
    _is_error(await pg_client.post(f"/api/v1/sessions/{sid}/join", headers=outsider.headers), 403, "Forbidden")
    r = await pg_client.post(f"/api/v1/sessions/{sid}/end", headers=setup.teacher.headers)
    assert r.status_code == 200
    _is_error(await pg_client.post(f"/api/v1/sessions/{sid}/join", headers=setup.student.headers), 409, "Conflict")
