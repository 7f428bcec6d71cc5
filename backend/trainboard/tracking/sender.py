"""The background sender: the training thread only appends to a queue; this thread sends.

Each tick (every TICK_SECONDS, or at once on `flush`/`finish`) it takes what is queued (at
most TICK_POINTS) and hands it to the courier: live to `POST /api/runs/{id}/metrics`, or
to the spool while the server is away. Nothing here raises into the caller: failures are
said once on stderr, and a batch is never dropped, whatever fails.

    log() ─► queue ─► tick ─► live: POST ──fails──► spool (append, fsync ≤ 1/s)
                              spooling: spool ─► replay: POST chunks, offset in run.json
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainboard.tracking.courier import CHUNK_POINTS, MAX_QUEUE, TICK_POINTS, Courier
from trainboard.tracking.spool import Point
from trainboard.tracking.transport import Refused, Unreachable

__all__ = ["CHUNK_POINTS", "MAX_QUEUE", "Sender"]

TICK_SECONDS = 0.2  # how stale a live point can be on the server, at most one POST per tick
NEVER_UP_SECONDS = 3.0  # `finish` of a run the server never answered for waits this long
FLUSH_LIVE_SECONDS = 0.5  # `flush` waits this long for the sender, then spools the queue itself


class Sender(Courier):
    """One run's queue and sending thread."""

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        create: dict[str, Any],
        offline: bool,
        spool_dir: Path,
    ) -> None:
        super().__init__(url=url, token=token, create=create, offline=offline, spool_dir=spool_dir)
        self.queue: deque[Point] = deque()
        self.waiters: deque[threading.Event] = deque()
        self.tasks: list[tuple[float, Callable[[], list[Point]]]] = []
        self.next_task_at: list[float] = []
        self.finish_deadline = 0.0
        self.finished = False  # the server recorded the finish
        self.done = threading.Event()
        if offline:
            self.created.set()
        self.wake.set()  # the first tick at once: the run is created as soon as possible
        self.thread = threading.Thread(target=self._loop, name="trainboard-sender", daemon=True)
        self.thread.start()

    # -- called from the user's threads ------------------------------------------------------

    def every(self, seconds: float, task: Callable[[], list[Point]]) -> None:
        """Call `task` on this thread every `seconds`; its points are sent like logged ones."""
        self.tasks.append((seconds, task))
        self.next_task_at.append(time.monotonic())

    def flush(self, timeout: float) -> None:
        """Wait (at most `timeout`) until what was logged before is sent or spooled. When the
        sending thread does not answer within FLUSH_LIVE_SECONDS (a slow server holds it in a
        request), this thread spools the queue itself: a flush never waits on the network."""
        if self.finish_request is not None:
            return  # finishing or finished: `finish` already waits for everything
        waiter = threading.Event()
        self.waiters.append(waiter)
        self.wake.set()
        if waiter.wait(min(timeout, FLUSH_LIVE_SECONDS)) or self.transport is None:
            if not waiter.is_set():
                waiter.wait(timeout - FLUSH_LIVE_SECONDS)
            return
        batch = self._drain()
        try:
            kept = self._keep(batch)
        except Exception:  # never raise into the script: the sender keeps them
            kept = batch
        if kept:
            # The disk refuses too (said once): they wait in memory for the server, and
            # waiting here would not make them any safer.
            self.queue.extendleft(reversed(kept))
            return
        # Behind the spool from now on: the sender replays it before going live again. (A
        # batch it is sending now, if that fails, is spooled after these: its values of a
        # (key, step) logged twice could win. Rare, and said nowhere.)
        self.spooling = True

    def finish(self, request: dict[str, Any], timeout: float) -> int:
        """Send everything and the finish, waiting at most `timeout`; the points left unsent."""
        self.finish_deadline = time.monotonic() + timeout
        self.finish_request = request
        self.wake.set()
        self.done.wait(timeout + 2.0)
        if self.finished:
            return 0
        try:
            return self.spool.pending(self.url) + len(self.queue)
        except (OSError, ValueError):  # an unreadable spool: what is known to be in memory
            return len(self.queue)

    # -- the sender thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while self.finish_request is None:
            self.wake.wait(TICK_SECONDS)
            self.wake.clear()
            try:
                self._tick()
            except Exception as exc:  # a bug here must not stop the sending
                self._say_once("bug", f"sender error ({type(exc).__name__}: {exc}); continuing")
        try:
            self._finish()
        except Exception as exc:
            self._say_once("bug", f"sender error at finish ({type(exc).__name__}: {exc})")
        finally:
            self.done.set()

    def _tick(self, *, force: bool = False) -> None:
        # Only the flushes asked for before this tick drained the queue are answered by it.
        waiting = len(self.waiters)
        now = time.monotonic()
        for i, (seconds, task) in enumerate(self.tasks):
            if now >= self.next_task_at[i]:
                self.next_task_at[i] = now + seconds
                self.queue.extend(task())
        batch = self._drain(TICK_POINTS)
        try:
            kept = self._deliver(batch, force=force)
        except BaseException:
            # Never lost: sent again later (the server keeps one value of a (key, step)).
            self.queue.extendleft(reversed(batch))
            raise
        if kept:  # neither sent nor spooled: at the queue's head; a later tick answers
            self.queue.extendleft(reversed(kept))
            return
        if self.queue and len(batch) == TICK_POINTS:
            self.wake.set()  # more than a tick's work was waiting: the rest at once
            return
        for _ in range(min(waiting, len(self.waiters))):
            self.waiters.popleft().set()

    def _drain(self, limit: int | None = None) -> list[Point]:
        count = len(self.queue) if limit is None else min(limit, len(self.queue))
        batch: list[Point] = []
        for _ in range(count):
            try:
                batch.append(self.queue.popleft())
            except IndexError:  # a `flush` on the script's thread took the rest
                break
        return batch

    def _finish(self) -> None:
        request = self.finish_request or {}
        # Saved first: whatever happens next, a later `trainboard sync` sends the finish too.
        self.spool.meta["finish"] = request
        with contextlib.suppress(OSError):
            if self.spool.exists:
                self.spool.save()
        # Everything still in memory goes to disk first: whatever happens next, nothing is lost.
        kept = self._keep(self._drain())
        if kept:  # the disk refuses: they go live from memory, if the server answers in time
            self.queue.extendleft(reversed(kept))
        else:
            with contextlib.suppress(OSError):  # the next write says it, if it matters
                self.spool.sync()
            self.spooling = True
        if self.run_id is None:  # never reached the server: a short wait, not the whole bound
            self.finish_deadline = min(self.finish_deadline, time.monotonic() + NEVER_UP_SECONDS)
        while self.transport is not None and self.refused is None:
            self._tick(force=True)
            if self.run_id is not None and not self.spooling and not self.queue:
                try:
                    self.transport.finish(self.run_id, request)
                    self.finished = True
                except Unreachable:
                    self.backoff.failure()
                except Refused as exc:
                    self.finished = exc.status == 409  # already final on the server
                    if exc.status == 422 and ("params" in request or "summary" in request):
                        # A config or summary the server will not take must not keep the
                        # run open: the finish goes again with status and error alone.
                        request = {"status": request["status"], "error": request["error"]}
                        continue
                    if not self.finished:
                        self._refuse(f"the server refused the finish ({exc})")
            if self.finished or time.monotonic() + 0.25 >= self.finish_deadline:
                break
            self.wake.wait(0.25)  # woken early only by more replay work
            self.wake.clear()
        if self.finished:
            self.spool.upload(self.url)["finished"] = True
        self.spool.meta["finish"] = request
        with contextlib.suppress(OSError):
            self.spool.close()
        if self.finished:
            shutil.rmtree(self.spool.folder, ignore_errors=True)  # all sent: nothing to keep
        else:
            with contextlib.suppress(OSError):  # already said, by _keep
                self.spool.save()
        if self.transport is not None:
            self.transport.close()

    # -- bookkeeping --------------------------------------------------------------------------
