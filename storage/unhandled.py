"""Turns an unexpected exception into the app's JSON 500 *without* losing the connection.

Starlette's outermost error middleware renders the 500 but then re-raises, and the server, seeing
an exception after a complete response, drops the keep-alive connection without a
``Connection: close``; the client's next request on it fails. This pure ASGI middleware sits
inside it: when nothing has been sent yet, it logs the error, answers through the given handler
(the one error shape) and returns normally, so the connection stays usable. When the response
had already started it cannot be repaired and the error goes on up (the server closes it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Handler = Callable[[Request, Exception], Awaitable[Response]]


class UnhandledErrorMiddleware:
    """Answers an unexpected exception with ``handler``'s response (see the module docstring)."""

    def __init__(self, app: ASGIApp, handler: Handler) -> None:
        self.app = app
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = await self.handler(Request(scope), exc)
            await response(scope, receive, send)
