"""Transcripts are personal data: in the speaker's export, gone when the speaker cancels."""

from __future__ import annotations

import httpx
import pytest

from accounts import service as accounts
from accounts.models import User
from moderation.models import SliceAnalysis
from storage.db import unit_of_work
from storage.runtime import get_runtime
from tests.factories import DEFAULT_PASSWORD
from tests.moderation.slice_factory import add_slice, live_room
from tests.moderation.test_pipeline import HARMLESS, drain, webm

pytestmark = pytest.mark.slow


async def test_transcript_exported_then_deleted_on_cancellation(client: httpx.AsyncClient) -> None:
    room = await live_room()
    speaker = room.speakers[1]
    sid = await add_slice(room, webm(HARMLESS), user_id=speaker)
    await drain()
    rt = get_runtime()
    async with unit_of_work(rt.sessionmaker) as s:
        user = await s.get(User, speaker)
        assert user is not None
        export = await accounts.export_data(s, user)
    transcripts = export["transcripts"]
    assert isinstance(transcripts, list) and len(transcripts) == 1
    assert "fraction" in transcripts[0]["transcript"].lower()

    async with unit_of_work(rt.sessionmaker) as s:
        user = await s.get(User, speaker)
        assert user is not None
        await accounts.cancel_account(s, user, DEFAULT_PASSWORD)
    async with rt.sessionmaker() as s:
        assert await s.get(SliceAnalysis, sid) is None
