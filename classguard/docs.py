"""``/docs``: Swagger UI served from the ``swagger-ui-bundle`` package, so the API docs work
offline and load nothing from a CDN. ``/openapi.json`` stays FastAPI's own. Off when
``docs_enabled`` is false (then ``/docs`` is a 404 like any unknown path)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from storage.errors import NotFound

ASSETS_PREFIX = "/docs/assets"
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="classguard API",
        swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PREFIX}/favicon-32x32.png",
    )


@router.get(ASSETS_PREFIX + "/{name}")
async def docs_asset(name: str) -> FileResponse:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such asset")
    # Versioned by the installed package, so browsers may keep it for a day.
    return FileResponse(Path(str(swagger_ui_path)) / name, media_type=media_type,
                        headers={"Cache-Control": "public, max-age=86400"})
