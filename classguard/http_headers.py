"""Response headers every answer of the app carries, set in one place (an ASGI middleware).

- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` on every response;
- ``Cache-Control: no-store`` on every ``/api/`` response (personal data, tokens, media): the
  honest rule is the whole API, since even unauthenticated answers (login, register, appeal
  sessions) carry a token or a profile. A route that already says ``no-store`` keeps its own value.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed media and WebSockets pass untouched.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


class SecurityHeaders:
    """Adds the headers above to each HTTP response start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _ALWAYS.items():
                    headers[name] = value
                if private and "no-store" not in headers.get("cache-control", ""):
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
