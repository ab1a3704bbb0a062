"""The live nudge over the real signaling WebSocket: a sure contact or payment hit shows the
speaker the policy notice (both languages; the page picks its own) and tells the teacher; a
low-confidence hit shows nothing. The app is served by uvicorn in this process, so review's
hook and the relay share the process as in the embedded mode."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from classguard.cli.common import free_port
from classroom import after_commit
from classroom.bot import Bot, WebSocketChannel
from moderation.review.live_nudge import NUDGE_TEXTS, live_action
from moderation.rules import Policy
from tests.classroom.class_factories import join as join_class
from tests.classroom.class_factories import make_class
from tests.factories import TestUser, logged_in
from tests.moderation.review.factory import NOT_DECODED, FlagSpec, flag_slice
from tests.moderation.slice_factory import Room


@pytest.fixture
async def port(app: FastAPI) -> AsyncIterator[int]:
    """The test app (already started) behind a real socket."""
    chosen = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=chosen, log_level="warning", lifespan="off"))
    serving = asyncio.ensure_future(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    yield chosen
    server.should_exit = True
    await serving


async def connect(client: httpx.AsyncClient, port: int, session_id: str, user: TestUser, name: str) -> Bot:
    """A bot on the signaling socket, admitted by a join ticket as the class page is."""
    joined = await client.post(f"/api/v1/sessions/{session_id}/join", headers=user.headers)
    assert joined.status_code == 200, joined.text
    query = urlsplit(joined.json()["signal_url"]).query
    url = f"ws://127.0.0.1:{port}/api/v1/sessions/{session_id}/signal?{query}"
    return await Bot(await WebSocketChannel(url).open(), name=name).start()


def notices(bot: Bot, kind: str = "notice") -> list[dict[str, Any]]:
    return [m for m in bot.messages if m.get("type") == kind]


async def test_a_sure_hit_nudges_the_speaker_and_tells_the_teacher_a_weak_one_does_not(
        client: httpx.AsyncClient, port: int) -> None:
    setup = await make_class(client)
    sid = (await join_class(client, setup.id, setup.teacher))["session"]["id"]
    await join_class(client, setup.id, setup.student)
    teacher = await connect(client, port, sid, setup.teacher, "teacher")
    student = await connect(client, port, sid, setup.student, "student")
    try:
        await teacher.wait_for(lambda: len(teacher.participants) == 2)
        room = Room(class_id=uuid.UUID(setup.id), session_id=uuid.UUID(sid), teacher_id=uuid.UUID(setup.teacher.id),
                    speakers=[uuid.UUID(setup.teacher.id), uuid.UUID(setup.student.id)])
        # First a weak hit (a number heard without a clear cue), then a sure one in another case:
        # the socket keeps order, so a notice for the weak one would arrive first.
        weak, _ = await flag_slice(room, FlagSpec(confidence=0.55, quote="[555123]"),
                                   user_id=uuid.UUID(setup.student.id), media=NOT_DECODED)
        sure, _ = await flag_slice(room, FlagSpec(category="payment_bypass", rule_id="payment.bypass",
                                                  quote="[pay me on Alipay instead]", confidence=0.95),
                                   user_id=uuid.UUID(setup.student.id), media=NOT_DECODED)
        await after_commit.drain()
        await student.wait_for(lambda: notices(student))
        await teacher.wait_for(lambda: notices(teacher, "notice_shown"))
        [shown] = notices(student)
        assert shown["kind"] == "moderation_nudge" and shown["texts"] == NUDGE_TEXTS
        assert "outside the platform" in shown["texts"]["en"] and "平台外付款" in shown["texts"]["zh"]
        assert shown["details"]["category"] == "payment_bypass"
        [told] = notices(teacher, "notice_shown")
        assert told["participant_id"] == setup.student.id and told["details"]["category"] == "payment_bypass"
        assert notices(teacher) == []  # the teacher said nothing: no notice of their own

        # Stored: in the class's control log and on the review case, which says it reached the socket.
        r = await client.get(f"/api/v1/sessions/{sid}/control-events", headers=setup.teacher.headers)
        assert [(e["action"], e["user_id"]) for e in r.json()] == [("notice", setup.student.id)]
        mod = await logged_in(client, "moderator")
        queue = (await client.get("/api/v1/moderation/queue", headers=mod.headers)).json()["items"]
        by_slice = {i["slice_id"]: i for i in queue}
        events = (await client.get(f"/api/v1/moderation/items/{by_slice[str(sure)]['id']}/events",
                                   headers=mod.headers)).json()
        nudges = [e for e in events if e["kind"] == "live_nudge"]
        assert len(nudges) == 1 and nudges[0]["data"]["delivered"] is True
        assert nudges[0]["data"]["rule_id"] == "payment.bypass"
        weak_events = (await client.get(f"/api/v1/moderation/items/{by_slice[str(weak)]['id']}/events",
                                        headers=mod.headers)).json()
        assert [e["kind"] for e in weak_events] == ["flag_created"]
    finally:
        await student.leave()
        await teacher.leave()


def test_live_action_follows_the_policy() -> None:
    base = Policy.default()
    doc: dict[str, Any] = {"version": "t-1", "live_min_confidence": 0.7, "rules": [
        {"id": "contact.phone", "version": 1, "category": "off_platform_contact", "severity": "high",
         "type": "keywords", "params": {"keywords": ["call me"]}, "live_action": "off"},
        {"id": "payment.bypass", "version": 1, "category": "payment_bypass", "severity": "high",
         "type": "keywords", "live_action": "nudge_restrict", "params": {"keywords": ["pay me directly"]}},
        {"id": "abuse.insult", "version": 1, "category": "abuse", "severity": "medium", "type": "keywords",
         "params": {"keywords": ["idiot"]}},
    ]}
    custom = Policy.from_dict(doc)

    class F:
        def __init__(self, rule_id: str, category: str, confidence: float) -> None:
            self.rule_id, self.category, self.confidence = rule_id, category, confidence

    assert live_action(base, F("contact.phone", "off_platform_contact", 0.9)) == "nudge"  # type: ignore[arg-type]
    assert live_action(base, F("contact.phone", "off_platform_contact", 0.6)) == "off"  # type: ignore[arg-type]
    assert live_action(base, F("abuse.insult", "abuse", 0.99)) == "off"  # type: ignore[arg-type]
    assert live_action(custom, F("contact.phone", "off_platform_contact", 0.99)) == "off"  # type: ignore[arg-type]
    assert live_action(custom, F("payment.bypass", "payment_bypass", 0.75)) == "nudge_restrict"  # type: ignore[arg-type]
    assert live_action(custom, F("payment.bypass", "payment_bypass", 0.65)) == "off"  # type: ignore[arg-type]
    with pytest.raises(Exception, match="live_action"):
        Policy.from_dict({**doc, "rules": [{**doc["rules"][0], "live_action": "shout"}]})
