"""Admission of reads: a burst of them takes turns, so it never starves the writes.

A server on one event loop interleaves every request it holds, so under a burst all of them
progress together and all finish late: a one-point metric write that arrives beside a hundred
page reads answers only when the last read does. Here reads (GET and HEAD) enter the app a few
at a time, in the order they came, and let the next one in as soon as their response starts
(a file download or a live-event stream then goes on sending without holding a turn). Writes
never wait for a turn: they are small, bounded by the body limits and timeouts, and a training
script is waiting on each one.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD"})


class ReadTurns:
    """ASGI middleware: at most `concurrent` GET/HEAD requests in the app until their
    response starts; the others wait in arrival order. Other methods go straight in."""

    def __init__(self, app: ASGIApp, concurrent: int) -> None:
        self.app, self.concurrent = app, concurrent
        self.turns: asyncio.Semaphore | None = None  # made on the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in READ_METHODS:
            await self.app(scope, receive, send)
            return
        if self.turns is None:
            self.turns = asyncio.Semaphore(self.concurrent)
        turns = self.turns
        await turns.acquire()
        holding = True

        async def send_and_release(message: Message) -> None:
            nonlocal holding
            if holding and message["type"] == "http.response.start":
                holding = False
                turns.release()
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            if holding:
                turns.release()
