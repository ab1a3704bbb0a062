"""Staff playback of a flagged slice: every open is in the access log, bytes come with HTTP
Range, the frame of a screen slice comes as JPEG; plus the Prometheus metrics."""

from __future__ import annotations

import io
import uuid

import av
import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from classguard.app import create_app
from classguard.settings import Settings
from storage.access_log.models import AccessLogEntry
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import logged_in
from tests.moderation.review.factory import (
    FlagSpec,
    claim,
    decide,
    decision,
    flag_slice,
    item_of_slice,
    live_room,
)

METRICS_TOKEN = "scraper-secret-1"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": METRICS_TOKEN})


async def recording_entries() -> list[AccessLogEntry]:
    async with unit_of_work(get_runtime().sessionmaker) as s:
        return list((await s.scalars(select(AccessLogEntry).where(AccessLogEntry.resource_type == "recording")
                                     .order_by(AccessLogEntry.seq))).all())


async def test_open_recording_logs_access_and_serves_ranges(client: httpx.AsyncClient) -> None:
    room = await live_room()
    sid, _ = await flag_slice(room)
    mod = await logged_in(client, "moderator")
    other = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)

    no_reason = await client.post(f"/api/v1/moderation/items/{item['id']}/recording", json={}, headers=mod.headers)
    assert no_reason.status_code == 422
    assert await recording_entries() == []
    r = await client.post(f"/api/v1/moderation/items/{item['id']}/recording",
                          json={"reason": "reviewing flagged phone number"}, headers=mod.headers)
    assert r.status_code == 201, r.text
    opened = r.json()
    assert opened["content_type"] == "audio/webm"
    [entry] = await recording_entries()
    assert entry.actor_id == uuid.UUID(mod.id) and entry.subject_id == room.speakers[-1]
    assert entry.resource_id == str(sid) and entry.reason == "reviewing flagged phone number"
    assert entry.action == "open" and entry.actor_role == "moderator"

    whole = await client.get(opened["media_url"], headers=mod.headers)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    data = whole.content
    with av.open(io.BytesIO(data)) as c:  # a real, playable WebM with Opus audio
        assert c.streams.audio[0].codec_context.name == "opus"
    part = await client.get(opened["media_url"], headers={**mod.headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    outside = await client.get(opened["media_url"], headers={**mod.headers, "Range": f"bytes={len(data) + 5}-"})
    assert outside.status_code == 416 and outside.json()["error"] == "RangeNotSatisfiable"
    # Seeking rides on the one open: still one access-log entry.
    assert len(await recording_entries()) == 1
    # Another moderator cannot use someone else's opening; they open it themselves (logged).
    assert (await client.get(opened["media_url"], headers=other.headers)).status_code == 404
    frame = await client.get(opened["frame_url"], params={"t": 1}, headers=mod.headers)
    assert frame.status_code == 422  # audio has no frames
    student = await logged_in(client, "student")
    assert (await client.post(f"/api/v1/moderation/items/{item['id']}/recording", json={"reason": "curious"},
                              headers=student.headers)).status_code == 403


async def test_screen_frame_is_a_jpeg_of_the_recorded_screen(client: httpx.AsyncClient) -> None:
    room = await live_room()
    box = [[60.0, 170.0], [900.0, 170.0], [900.0, 230.0], [60.0, 230.0]]
    sid, _ = await flag_slice(room, FlagSpec(rule_id="contact.handle", evidence={"frame_time": 1.0, "boxes": [box]}),
                              source="screen")
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, sid)
    opened = (await client.post(f"/api/v1/moderation/items/{item['id']}/recording",
                                json={"reason": "check the shared screen"}, headers=mod.headers)).json()
    assert opened["content_type"] == "video/webm"
    r = await client.get(opened["frame_url"], params={"t": 1.0}, headers=mod.headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert (r.headers["x-frame-width"], r.headers["x-frame-height"]) == ("1280", "720")
    img = Image.open(io.BytesIO(r.content)).convert("L")
    assert img.size == (1280, 720)
    # The drawn text is dark on white: the OCR box region holds ink, a blank corner does not.
    region = img.crop((60, 100, 900, 260))
    assert region.getextrema()[0] < 100 and img.crop((1200, 650, 1270, 710)).getextrema()[0] > 200  # type: ignore[index,operator]


async def test_metrics_report_queue_depth_decisions_and_appeals(client: httpx.AsyncClient) -> None:
    room = await live_room()
    a, _ = await flag_slice(room)
    await flag_slice(room, FlagSpec(category="abuse", rule_id="abuse.slur", severity="medium"))
    await flag_slice(room, FlagSpec(category="personal_data", rule_id="pii.id", severity="critical",
                                    auto_action="suspend_pending_review"))
    mod = await logged_in(client, "moderator")
    item = await item_of_slice(client, mod, a)
    await claim(client, mod, item["id"])
    await decide(client, mod, item["id"], decision(action="warn"))

    r = await client.get("/metrics", headers=METRICS_AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'classguard_moderation_queue_depth{category="abuse",status="new"} 1.0' in text
    assert 'classguard_moderation_queue_depth{category="personal_data",status="new"} 1.0' in text
    assert 'category="off_platform_contact"' not in text.split("classguard_moderation_decisions")[0]
    assert 'classguard_moderation_decisions_total{automated="partially",outcome="confirm"} 1.0' in text
    assert 'classguard_moderation_decisions_total{automated="fully",outcome="restrict"} 1.0' in text
    assert "classguard_moderation_time_to_first_claim_seconds_count" in text
    assert 'classguard_moderation_time_to_decision_seconds_count{automated="partially"}' in text
    assert 'classguard_moderation_appeals_by_status{status="open"} 0.0' in text
    assert "classguard_moderation_appeal_overturn_ratio 0.0" in text


async def test_metrics_need_the_bearer_token(client: httpx.AsyncClient) -> None:
    mod = await logged_in(client, "admin")
    for headers in ({}, {"Authorization": "Bearer wrong"}, mod.headers, {"Authorization": METRICS_TOKEN}):
        r = await client.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "Unauthorized", headers
        assert r.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/metrics", headers=METRICS_AUTH)).status_code == 200


async def test_metrics_are_off_without_a_token(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"metrics_token": ""}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            r = await c.get("/metrics")
            assert r.status_code == 404 and r.json()["error"] == "NotFound"
            assert (await c.get("/metrics", headers={"Authorization": "Bearer "})).status_code == 404
