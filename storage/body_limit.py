"""Request-body ceilings enforced before anything reads or parses a body.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is answered 413 at once,
without reading a byte of the body; a body without one (chunked) is counted as it streams in
and cut off the moment it passes the limit. The relay shares the event loop with HTTP, so an
oversized body must cost neither the memory to hold it nor the CPU to parse it.

Every route gets the JSON ceiling (``max_json_body_bytes``) unless it declares its own with
``openapi_extra=max_body(n)`` (uploads); the declared limit is also visible in the OpenAPI doc.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.route_table import RouteTable

MAX_BODY_KEY = "x-max-body-bytes"

# The remainder of a refused body is never read, so the connection cannot carry another request.
_CLOSE = {"Connection": "close"}


def max_body(limit: int) -> dict[str, Any]:
    """``openapi_extra`` for a route whose bodies may be larger (or must be smaller) than JSON's."""
    return {MAX_BODY_KEY: limit}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its limit. An ``HTTPException`` so that
    FastAPI's body reader lets it through (it turns other errors into 400) and the app's one
    handler renders it in the error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", headers=_CLOSE)


def _too_large_body(limit: int) -> bytes:
    return json.dumps({"error": "PayloadTooLarge", "detail": f"request body larger than {limit} bytes"}).encode()


class BodyLimitMiddleware:
    """Caps every HTTP request body at ``limit_for(scope)`` bytes (see the module docstring)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Read outside FastAPI's body reader (a raw route): answer here if nothing was sent.
            if started:
                raise
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = _too_large_body(limit)
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we are called
    return None


class RouteLimits:
    """The body limit of a request: the one its route declares (``max_body``), else ``default``."""

    def __init__(self, routes: RouteTable, default: int) -> None:
        self.routes = routes
        self.default = default
        self._declared: list[tuple[re.Pattern[str], str, int]] | None = None

    def __call__(self, scope: Scope) -> int:
        if self._declared is None:
            self._declared = [(op.pattern, op.method, int(op.spec[MAX_BODY_KEY]))
                              for op in self.routes.operations if MAX_BODY_KEY in op.spec]
        path, method = scope.get("path", ""), scope.get("method", "")
        for pattern, rule_method, limit in self._declared:
            if rule_method == method and pattern.match(path):
                return limit
        return self.default
