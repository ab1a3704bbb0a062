"""HTTP Range over the media store, through a tiny FastAPI app with the platform's error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Header
from fastapi.responses import StreamingResponse

from classguard.app import install_error_handlers
from storage.media import LocalMediaStore
from storage.media_http import parse_range, range_response

BODY = bytes(range(256)) * 2000  # 512000 bytes
SIZE = len(BODY)


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    store = LocalMediaStore(tmp_path / "media")
    await store.put("rec/a.webm", BODY, "video/webm")
    await store.put("rec/empty.webm", b"")
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/media/{key:path}")
    async def media(key: str, range: str | None = Header(None)) -> StreamingResponse:
        return await range_response(store, key, range, "video/webm")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


async def test_no_range_is_200_whole_body(http: httpx.AsyncClient) -> None:
    r = await http.get("/media/rec/a.webm")
    assert r.status_code == 200
    assert r.content == BODY
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(SIZE)
    assert r.headers["content-type"] == "video/webm"


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-0", 0, 0),
    ("bytes=0-1023", 0, 1023),
    ("bytes=1000-", 1000, SIZE - 1),
    ("bytes=-500", SIZE - 500, SIZE - 1),
    ("bytes=-999999999", 0, SIZE - 1),  # longer suffix than the object: all of it
    ("bytes=500000-999999999", 500000, SIZE - 1),  # end past the object is clipped
    (f"bytes={SIZE - 1}-", SIZE - 1, SIZE - 1),
    ("BYTES = 10 - 19", 10, 19),
])
async def test_single_range_is_206(http: httpx.AsyncClient, header: str, first: int, last: int) -> None:
    r = await http.get("/media/rec/a.webm", headers={"Range": header})
    assert r.status_code == 206
    assert r.content == BODY[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert r.headers["content-length"] == str(last - first + 1)
    assert r.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
async def test_unsatisfiable_range_is_416_with_error_shape(http: httpx.AsyncClient, header: str) -> None:
    r = await http.get("/media/rec/a.webm", headers={"Range": header})
    assert r.status_code == 416
    assert r.json()["error"] == "RangeNotSatisfiable" and str(SIZE) in r.json()["detail"]
    assert r.headers["content-range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("header", ["bytes=0-10,20-30", "items=0-5", "bytes=abc", "bytes=20-10", "bytes=-"])
async def test_unsupported_or_invalid_range_is_ignored(http: httpx.AsyncClient, header: str) -> None:
    r = await http.get("/media/rec/a.webm", headers={"Range": header})
    assert r.status_code == 200 and r.content == BODY


async def test_empty_object(http: httpx.AsyncClient) -> None:
    r = await http.get("/media/rec/empty.webm")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    r = await http.get("/media/rec/empty.webm", headers={"Range": "bytes=0-"})
    assert r.status_code == 416


async def test_missing_and_unsafe_keys(http: httpx.AsyncClient) -> None:
    r = await http.get("/media/rec/missing.webm", headers={"Range": "bytes=0-1"})
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    r = await http.get("/media/rec/.hidden")
    assert r.status_code == 400 and r.json()["error"] == "BadRequest"


async def test_seeking_reassembles_the_file(http: httpx.AsyncClient) -> None:
    """What a player does: many consecutive ranges, which together are the file."""
    parts = []
    step = 65_537
    for first in range(0, SIZE, step):
        r = await http.get("/media/rec/a.webm", headers={"Range": f"bytes={first}-{first + step - 1}"})
        assert r.status_code == 206
        parts.append(r.content)
    assert b"".join(parts) == BODY


def test_parse_range_none_means_whole() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 4)
