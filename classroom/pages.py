"""The class page: plain HTML + JavaScript served by the app (no build step).

``/class`` (and ``/classes/{id}``, which opens that class directly) log in, list and join
classes, switch mic / camera / screen share, play the others and show the recording indicator
the server reports. ``?fakescreen=1`` shares a canvas instead of the display (headless tests).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from storage.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
_ASSETS = {"class.js": "text/javascript", "class.css": "text/css"}
# The page loads only its own script and style; media and sockets stay on this origin.
_CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
        "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


def _page() -> FileResponse:
    return FileResponse(STATIC / "class.html", media_type="text/html",
                        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"})


@router.get("/class")
async def class_page() -> FileResponse:
    return _page()


@router.get("/classes/{class_id}")
async def class_page_for(class_id: uuid.UUID) -> FileResponse:
    return _page()


@router.get("/static/classroom/{name}")
async def asset(name: str) -> FileResponse:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such asset")
    return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"})
