"""FastAPI application factory: routers of every domain, one error shape, health check."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from classguard import docs
from classguard.bootstrap import domain_modules, start_runtime, stop_runtime
from classguard.http_headers import SecurityHeaders
from classguard.settings import Settings, get_settings
from storage.body_limit import BodyLimitMiddleware, RouteLimits
from storage.errors import AppError, ErrorBody, ServiceUnavailable
from storage.route_table import RouteTable
from storage.runtime import get_runtime
from storage.unhandled import UnhandledErrorMiddleware

log = logging.getLogger("classguard.http")

_HTTP_NAMES = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType", 416: "RangeNotSatisfiable",
    422: "ValidationError", 429: "TooManyRequests",
}


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        # An error may carry response headers (e.g. 416's Content-Range: bytes */size).
        return JSONResponse(exc.to_json(), status_code=exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "ValidationError", "detail": _validation_detail(exc)}, status_code=422)

    routes = RouteTable(app.openapi)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = _HTTP_NAMES.get(exc.status_code, "HTTPError")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # The router names only the methods of the first route it matched; a path may have more.
            listed = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
            headers["Allow"] = ", ".join(sorted(listed | routes.methods(request.url.path)))
        return JSONResponse({"error": name, "detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=headers or None)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return JSONResponse({"error": "Conflict", "detail": "conflicts with stored data"}, status_code=409)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(_: Request, exc: PoolTimeout) -> JSONResponse:
        # Every pooled connection is busy: say so at once (the client may retry), never a late 500.
        log.warning("database pool exhausted: %s", exc)
        err = ServiceUnavailable("the service is busy; try again in a moment")
        return JSONResponse(err.to_json(), status_code=err.status, headers=err.headers)

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        if "database is locked" in str(exc.orig):  # SQLite's writer lock stayed taken too long
            log.warning("database locked: %s", exc.orig)
            err = ServiceUnavailable("the service is busy; try again in a moment")
            return JSONResponse(err.to_json(), status_code=err.status, headers=err.headers)
        return await unhandled_error(request, exc)

    # Unexpected errors are answered inside the middleware stack (the connection stays usable);
    # the outermost handler is the same function, for errors of the middlewares themselves.
    app.add_exception_handler(Exception, unhandled_error)
    app.add_middleware(UnhandledErrorMiddleware, handler=unhandled_error)


async def unhandled_error(_: Request, exc: Exception) -> JSONResponse:
    """The one answer to an unexpected exception: logged, a JSON 500 in the error shape."""
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse({"error": "InternalError", "detail": "internal server error"}, status_code=500)


def create_app(settings: Settings | None = None, *, start_workers: bool = True) -> FastAPI:
    """Build the ASGI app. The runtime (DB, media, workers) starts in the lifespan."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await start_runtime(settings, start_workers=start_workers)
        try:
            yield
        finally:
            await stop_runtime()

    app = FastAPI(
        title="classguard",
        version="0.1.0",
        description="Live classes with consent-bound recording, automated moderation and human review.",
        lifespan=lifespan,
        # Every route may answer these: an unparsable or invalid request, an oversized body.
        responses={400: {"model": ErrorBody, "description": "BadRequest"},
                   413: {"model": ErrorBody, "description": "PayloadTooLarge"},
                   422: {"model": ErrorBody, "description": "ValidationError"}},
        docs_url=None,  # our own /docs below: Swagger UI from the package, not a CDN
        redoc_url=None,  # ReDoc would load from a CDN
    )
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    if settings.docs_enabled:
        app.include_router(docs.router)
    # Outermost of our middlewares: an oversized body is refused before anything reads it.
    limits = RouteLimits(RouteTable(app.openapi), settings.max_json_body_bytes)
    app.add_middleware(BodyLimitMiddleware, limit_for=limits)

    @app.get("/healthz", tags=["ops"], responses={503: {"model": ErrorBody}})
    async def healthz() -> Any:
        try:
            async with get_runtime().engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # the probe must answer, whatever broke
            return JSONResponse({"error": "Unavailable", "detail": str(exc)}, status_code=503)
        return {"status": "ok"}

    for mod in domain_modules("endpoints"):
        router = getattr(mod, "router", None)
        if router is not None:
            app.include_router(router)
    for mod in domain_modules("pages"):
        router = getattr(mod, "router", None)
        if router is not None:
            app.include_router(router)
    # Review lives in a sub-package of moderation: its API (+ /metrics) and its console page.
    if importlib.util.find_spec("moderation.review.endpoints") is not None:
        from moderation.review import console
        from moderation.review import endpoints as review_endpoints

        app.include_router(review_endpoints.router)
        app.include_router(console.router)
    return app
