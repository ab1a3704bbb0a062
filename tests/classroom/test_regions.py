"""Privacy promise 9: a person's recordings are stored in the region the settings assign to them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from classguard.settings import Settings
from classroom import events
from classroom.models import Slice
from storage.media import RegionalMediaStore
from storage.runtime import get_runtime
from tests.factories import make_user
from tests.moderation import fixtures
from tests.moderation.slice_factory import add_slice, live_room


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.media_regions = {"eu": str(tmp_path / "eu-store"), "cn": str(tmp_path / "cn-store")}
    return settings


@pytest.fixture(autouse=True)
def classroom_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "slice_created_hooks", [])


async def test_recordings_land_in_their_owners_region(app: object, tmp_path: Path) -> None:
    rt = get_runtime()
    assert isinstance(rt.media, RegionalMediaStore)
    room = await live_room()
    in_cn = uuid.UUID((await make_user("student", region="cn")).id)
    speech = fixtures.transcode(fixtures.concat([fixtures.speech("good morning class"), 0.5]), ".webm")
    eu_slice = await add_slice(room, speech, user_id=room.speakers[0])  # the teacher: default region eu
    cn_slice = await add_slice(room, speech, user_id=in_cn)
    async with rt.sessionmaker() as s:
        eu_row, cn_row = await s.get(Slice, eu_slice), await s.get(Slice, cn_slice)
    assert eu_row is not None and cn_row is not None
    assert eu_row.media_key.startswith("eu/") and cn_row.media_key.startswith("cn/")
    assert (tmp_path / "eu-store" / eu_row.media_key).is_file()
    assert (tmp_path / "cn-store" / cn_row.media_key).is_file()
    assert not (tmp_path / "cn-store" / eu_row.media_key).exists()
    assert not (tmp_path / "eu-store" / cn_row.media_key).exists()
    assert rt.settings.media_dir is not None
    assert not list(rt.settings.media_dir.rglob("*.webm"))  # nothing personal in the default store
    # reads route by key, so playback and the pipeline need not know the region
    assert await rt.media.get_bytes(cn_row.media_key) == speech.read_bytes()
    assert set(await rt.media.list("")) >= {eu_row.media_key, cn_row.media_key}
    assert await rt.media.list("cn/") == [cn_row.media_key]
