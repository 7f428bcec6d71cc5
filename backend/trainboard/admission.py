"""Admission of reads: a burst of them takes turns, so it never starves the writes.

A server on one event loop interleaves every request it holds, so under a burst all of them
progress together and all finish late: a one-point metric write that arrives beside a hundred
page reads answers only when the last read does. Here reads (GET and HEAD) enter the app a few
at a time, in the order they came, and let the next one in as soon as their response starts
(a file download or a live-event stream then goes on sending without holding a turn). A read
that takes longer than TURN_SECONDS before it answers (an export, a first importance) gives its
turn to the next one and finishes on its own, so a few slow reads cannot stall every other.
Writes never wait for a turn: they are small, bounded by the body limits and timeouts, and a
training script is waiting on each one. And while a batch of metric writes commits, reads that
get their turn wait for it (`WritesFirst`): on one core's worth of Python, a read that runs
beside the commit slows it several times over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Message, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD"})
TURN_SECONDS = 1.0


class WritesFirst:
    """A write in progress (a batch of metric points) that reads let finish before they start.
    A read waits for the one in progress when it asks, never for those after it, so a steady
    stream of writes cannot starve the reads."""

    def __init__(self) -> None:
        self.written: asyncio.Event | None = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Reads that get their turn while this lasts start after it."""
        written = self.written = asyncio.Event()
        try:
            yield
        finally:
            written.set()
            if self.written is written:
                self.written = None

    async def wait(self) -> None:
        """Until the write in progress now (if any) is done; not the ones after it."""
        if self.written is not None:
            await self.written.wait()


class ReadTurns:
    """ASGI middleware: at most `concurrent` GET/HEAD requests in the app until their
    response starts; the others wait in arrival order. Other methods go straight in."""

    def __init__(
        self,
        app: ASGIApp,
        concurrent: int,
        turn_seconds: float = TURN_SECONDS,
        writes: WritesFirst | None = None,
    ) -> None:
        self.app, self.concurrent, self.turn_seconds = app, concurrent, turn_seconds
        self.writes = writes or WritesFirst()
        # Made on the loop that serves (a server has one; each TestClient a loop of its own).
        self.loop: asyncio.AbstractEventLoop | None = None
        self.turns = asyncio.Semaphore(concurrent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in READ_METHODS:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop, self.turns = loop, asyncio.Semaphore(self.concurrent)
        turns = self.turns
        await turns.acquire()
        holding = True
        await self.writes.wait()

        def give_back() -> None:
            nonlocal holding
            if holding:
                holding = False
                turns.release()

        timer = loop.call_later(self.turn_seconds, give_back)

        async def send_and_give_back(message: Message) -> None:
            if message["type"] == "http.response.start":
                give_back()
            await send(message)

        try:
            await self.app(scope, receive, send_and_give_back)
        finally:
            timer.cancel()
            give_back()
