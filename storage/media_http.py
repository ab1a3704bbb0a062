"""Serving media objects over HTTP with byte ranges, so browsers can play and seek recordings."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from storage.errors import RangeNotSatisfiable
from storage.media import MediaStore

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range ``(first, last)`` a ``Range`` header asks for, or ``None`` for all.

    Supports one range: ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` (the last n bytes). A
    header we do not understand (another unit, several ranges, garbage) is ignored, as
    RFC 9110 allows, and the whole object is sent. A syntactically valid range that lies
    outside the object raises ``RangeNotSatisfiable``.
    """
    if header is None:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix range: the last n bytes
        n = int(last_s)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header.strip()!r} is outside the object (size {size})")
        return max(0, size - n), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # invalid range syntax: ignore the header
    if first >= size:
        raise RangeNotSatisfiable(f"range {header.strip()!r} is outside the object (size {size})")
    return first, min(last, size - 1)


async def range_response(
    store: MediaStore, key: str, range_header: str | None, content_type: str
) -> StreamingResponse:
    """A 200 (whole object) or 206 (one range) streaming response for ``key``.

    Raises ``MediaNotFound`` (404) for a missing object and ``RangeNotSatisfiable`` (416, with
    ``Content-Range: bytes */size`` as the RFC asks) for a range outside it; the app's error
    handler renders both in the usual error shape.
    """
    size = await store.size(key)
    try:
        rng = parse_range(range_header, size)
    except RangeNotSatisfiable as exc:
        raise _RangeError(exc.detail, size) from None
    headers = {"Accept-Ranges": "bytes"}
    if rng is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_stream(store, key, 0, size), status_code=200, media_type=content_type,
                                 headers=headers)
    first, last = rng
    headers["Content-Length"] = str(last - first + 1)
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(_stream(store, key, first, last + 1), status_code=206, media_type=content_type,
                             headers=headers)


class _RangeError(RangeNotSatisfiable):
    """416 carrying the object size, for a ``Content-Range: bytes */size`` header."""

    def __init__(self, detail: str, size: int) -> None:
        super().__init__(detail)
        self.size = size
        self.headers = {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}


async def _stream(store: MediaStore, key: str, start: int, end: int) -> AsyncIterator[bytes]:
    async for chunk in store.open_range(key, start, end):
        yield chunk
