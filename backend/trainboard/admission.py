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
import contextlib
from collections.abc import Iterator

from starlette.types import ASGIApp, Message, Receive, Scope, Send

READ_METHODS = frozenset({"GET", "HEAD"})
TURN_SECONDS = 1.0
WRITES_FIRST_SECONDS = 0.25  # a batch commits in milliseconds unless another writer holds it


class WritesFirst:
    """A write in progress (a batch of metric points) that reads let finish before they start.
    A read waits for the one in progress when it asks, never for those after it, so a steady
    stream of writes cannot starve the reads; and at most `patience` seconds, so a batch held
    up by another writer's lock (a large delete) does not hold up the reads with it."""

    def __init__(self, patience: float = WRITES_FIRST_SECONDS) -> None:
        self.patience = patience
        self.written: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Reads that get their turn while this lasts start after it."""
        written = self.written = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        try:
            yield
        finally:
            written.set()
            if self.written is written:
                self.written = None

    async def wait(self) -> None:
        """Until the write in progress now (if any) is done, or `patience` has passed."""
        written = self.written
        # An event belongs to its loop (each TestClient runs one of its own).
        if written is None or self.loop is not asyncio.get_running_loop():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(written.wait(), self.patience)


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

        def give_back() -> None:
            nonlocal holding
            if holding:
                holding = False
                turns.release()

        async def send_and_give_back(message: Message) -> None:
            if message["type"] == "http.response.start":
                give_back()
            await send(message)

        timer: asyncio.TimerHandle | None = None
        try:
            await self.writes.wait()
            timer = loop.call_later(self.turn_seconds, give_back)
            await self.app(scope, receive, send_and_give_back)
        finally:
            if timer is not None:
                timer.cancel()
            give_back()
