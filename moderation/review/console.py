"""The moderators' console: one plain HTML + JS page served by the app at ``/moderation``.

It talks only to the public review API with the session cookie set by the login route;
the page itself holds no data, so it is served without authentication.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from storage.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
_ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
# Like the class page's: only its own script and style, media and API calls on this origin,
# no inline code, never framed. Screen frames are fetched and drawn on a canvas (no img source).
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
       "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")

router = APIRouter(include_in_schema=False)


@router.get("/moderation")
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "console.html", media_type="text/html",
                        headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": CSP})


@router.get("/moderation/static/{name}")
async def console_asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise NotFound("no such asset")
    return FileResponse(STATIC / name, media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})
