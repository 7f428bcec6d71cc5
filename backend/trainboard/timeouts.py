"""Deadlines for slow clients: request headers (a uvicorn protocol) and bodies (ASGI middleware).

uvicorn waits forever for a request that never completes (its keep-alive timeout only runs
between requests), so a client that sends half a request line, or a body a byte a minute,
holds a connection, its memory and, for a body, a handler.
"""

from __future__ import annotations

import asyncio

import anyio
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trainboard.limits import is_checkpoint_upload


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request line and headers are not
    all in `header_timeout` seconds after it opened, or after its next request began."""

    header_timeout: float = 10.0
    header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _expire(self) -> None:
        # No answer: there is no request to answer yet, and a 408 on a connection the client
        # has not used would be read as the reply to its next request.
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """The protocol class for `uvicorn.run(http=...)`, with this header deadline."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})


class BodyTimedOut(HTTPException):
    """Raised from `receive`: FastAPI passes an HTTPException from body reading on as it is."""

    def __init__(self, seconds: float) -> None:
        # Closing the connection ends the slow upload; the rest of the body is never read.
        detail = f"the request body did not arrive within {seconds:g} seconds"
        super().__init__(408, detail, headers={"Connection": "close"})


class BodyTimeout:
    """408 when a request's body is not all in `seconds` after the app first reads it (for a
    remote worker's checkpoint upload, when `seconds` pass without a chunk: a large file may
    take long, a stalled one may not). Reads after the body (a stream waiting for the client
    to disconnect) have no deadline."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline: float | None = None
        body_done = False
        per_chunk = is_checkpoint_upload(scope)

        async def timed() -> Message:
            nonlocal deadline, body_done
            if body_done:
                return await receive()
            if deadline is None or per_chunk:
                deadline = anyio.current_time() + self.seconds
            with anyio.CancelScope(deadline=deadline) as waited:
                message = await receive()
            if waited.cancelled_caught:
                raise BodyTimedOut(self.seconds)
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        try:
            await self.app(scope, timed, send)
        except BodyTimedOut as exc:
            response = JSONResponse({"detail": exc.detail}, 408, headers=exc.headers)
            await response(scope, receive, send)
