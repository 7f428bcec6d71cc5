"""Reads take turns (admission.ReadTurns): a read waits while `concurrent` reads are in the app,
goes in as soon as one of them starts its response, and writes never wait; a read given its
turn while a batch of writes commits lets it finish first (admission.WritesFirst)."""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send
from trainboard.admission import ReadTurns, WritesFirst

from tests.helpers import run_async


class Handler:
    """An ASGI app whose requests each wait for their own release before they respond."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"]
        self.entered.append(name)
        await self.release.setdefault(name, asyncio.Event()).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await self.stream_until_told(name, send)

    async def stream_until_told(self, name: str, send: Send) -> None:
        # A long response (a download, a live stream) goes on after its start.
        await self.release.setdefault(f"{name}/end", asyncio.Event()).wait()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def finish(self, name: str) -> None:
        """Let the request `name` respond and end its response."""
        for step in (name, f"{name}/end"):
            self.release.setdefault(step, asyncio.Event()).set()


def request(app: ReadTurns, method: str, path: str) -> asyncio.Task[None]:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "method": method, "path": path}
    return asyncio.ensure_future(app(scope, receive, send))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_read_waits_for_a_turn_and_a_write_does_not() -> None:
    async def scenario() -> None:
        handler = Handler()
        app = ReadTurns(handler, concurrent=1)
        tasks = [request(app, "GET", "/first"), request(app, "GET", "/second")]
        await settle()
        assert handler.entered == ["/first"]  # the second read waits its turn
        tasks.append(request(app, "POST", "/write"))
        await settle()
        assert handler.entered == ["/first", "/write"]  # a write goes straight in
        # The first read starts its response: the second goes in while the first still sends.
        handler.release["/first"].set()
        await settle()
        assert handler.entered == ["/first", "/write", "/second"]
        for name in ("/first", "/second", "/write"):
            handler.finish(name)
        await asyncio.gather(*tasks)

    run_async(scenario())


def test_a_read_that_fails_before_responding_gives_its_turn_back() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("the handler broke")

    async def scenario() -> None:
        app = ReadTurns(failing, concurrent=1)
        for _ in range(3):  # with the turn kept, the second would wait forever
            outcome = await asyncio.wait_for(
                asyncio.gather(request(app, "GET", "/x"), return_exceptions=True), 5
            )
            assert isinstance(outcome[0], RuntimeError)

    run_async(scenario())


def test_a_read_slow_to_answer_gives_its_turn_to_the_next() -> None:
    async def scenario() -> None:
        handler = Handler()
        app = ReadTurns(handler, concurrent=1, turn_seconds=0.05)
        slow, quick = request(app, "GET", "/slow"), request(app, "GET", "/quick")
        await settle()
        assert handler.entered == ["/slow"]
        # The slow one has not answered after its turn's time: the next read goes in anyway.
        await asyncio.wait_for(wait_for_entry(handler, "/quick"), 5)
        assert not slow.done()
        for name in ("/slow", "/quick"):
            handler.finish(name)
        await asyncio.gather(slow, quick)

    run_async(scenario())


async def wait_for_entry(handler: Handler, name: str) -> None:
    while name not in handler.entered:
        await asyncio.sleep(0.01)


def batch_committing(writes: WritesFirst, done: asyncio.Event) -> asyncio.Task[None]:
    """A batch of writes that commits until `done` is set."""

    async def commit() -> None:
        with writes.writing():
            await done.wait()

    return asyncio.ensure_future(commit())


def test_a_read_given_its_turn_while_a_write_commits_starts_after_it() -> None:
    async def scenario() -> None:
        handler, writes = Handler(), WritesFirst()
        app = ReadTurns(handler, concurrent=4, writes=writes)
        first_batch, second_batch = asyncio.Event(), asyncio.Event()
        committing = batch_committing(writes, first_batch)
        await settle()
        early = request(app, "GET", "/early")
        await settle()
        assert handler.entered == []  # a turn is free, but the batch goes first
        first_batch.set()
        await committing
        await settle()
        assert handler.entered == ["/early"]
        # A read waits for the batch in progress when it asks, not for the ones after it.
        committing = batch_committing(writes, second_batch)
        await settle()
        late = request(app, "GET", "/late")
        await settle()
        committing_next = batch_committing(writes, asyncio.Event())
        second_batch.set()
        await committing
        await settle()
        assert handler.entered == ["/early", "/late"]  # the next batch is still committing
        committing_next.cancel()
        for name in ("/early", "/late"):
            handler.finish(name)
        await asyncio.gather(early, late)

    run_async(scenario())


def test_a_read_waits_for_a_held_up_batch_only_as_long_as_its_patience() -> None:
    async def scenario() -> None:
        handler, writes = Handler(), WritesFirst(patience=0.05)
        app = ReadTurns(handler, concurrent=1, writes=writes)
        never = asyncio.Event()  # the batch waits for a lock another writer holds
        committing = batch_committing(writes, never)
        await settle()
        read = request(app, "GET", "/read")
        await asyncio.wait_for(wait_for_entry(handler, "/read"), 5)
        assert not committing.done()
        handler.finish("/read")
        await read
        never.set()
        await committing

    run_async(scenario())


def test_a_read_cancelled_while_a_batch_commits_gives_its_turn_back() -> None:
    async def scenario() -> None:
        handler, writes = Handler(), WritesFirst()
        app = ReadTurns(handler, concurrent=1, writes=writes)
        committed = asyncio.Event()
        committing = batch_committing(writes, committed)
        await settle()
        gone = request(app, "GET", "/gone")  # its client goes away while it waits
        await settle()
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        committed.set()
        await committing
        # With the turn kept by the cancelled read, this one would wait forever.
        after = request(app, "GET", "/after")
        await asyncio.wait_for(wait_for_entry(handler, "/after"), 5)
        handler.finish("/after")
        await after

    run_async(scenario())
