"""The background sender: the training thread only appends to a queue; this thread sends.

Each tick (every TICK_SECONDS, or at once on `flush`/`finish`) it takes everything queued and
sends it to `POST /api/runs/{id}/metrics`, creating the run first if that has not happened
yet. What cannot be sent (no server, 5xx, a timeout) goes to the run's spool on disk, and
from then on every new batch is appended behind it, so points reach the server in the order
they were logged (the server keeps the last value of a (key, step)). The spool is replayed
with backoff until it is empty, then sending is live again. Nothing here raises into the
caller: failures are said once on stderr.

    log() ─► queue ─► tick ─► live: POST ──fails──► spool (append, fsync ≤ 1/s)
                              spooling: spool ─► replay: POST chunks, offset in run.json
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainboard.tracking.spool import Point, Spool, new_folder_name
from trainboard.tracking.transport import Refused, Transport, Unreachable

TICK_SECONDS = 0.2  # how stale a live point can be on the server, at most one POST per tick
CHUNK_POINTS = 5000  # points a request; far under the server's 100,000 and 16 MiB limits
MAX_QUEUE = 1_000_000  # points held in memory (~100 MB) before new ones are dropped
BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds between tries while the server is away
HEARTBEAT_SECONDS = 15.0  # an idle run still tells the server it is alive this often
NEVER_UP_SECONDS = 3.0  # `finish` of a run the server never answered for waits this long


def say(message: str) -> None:
    """One line on stderr, prefixed; never raises (stderr may be closed at exit)."""
    with contextlib.suppress(Exception):
        print(f"trainboard: {message}", file=sys.stderr, flush=True)


class Sender:
    """One run's queue, spool and sending thread."""

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        create: dict[str, Any],
        offline: bool,
        spool_dir: Path,
    ) -> None:
        self.url = url.rstrip("/")
        self.queue: deque[Point] = deque()
        self.lines: deque[str] = deque(maxlen=10_000)  # console lines; dropped when unsent
        self.transport = None if offline else Transport(self.url, token)
        self.spool = Spool(spool_dir / new_folder_name(), url=self.url, create=create)
        self.run_id: int | None = None
        self.created = threading.Event()  # the first attempt to create the run is over
        self.spooling = offline
        self.refused: str | None = None  # why the server refused us; then only the spool
        self.retry_at, self.failures = 0.0, 0
        self.last_post = time.monotonic()
        self.told: set[str] = set()
        self.waiters: deque[threading.Event] = deque()
        self.tasks: list[tuple[float, Callable[[], list[Point]]]] = []
        self.next_task_at: list[float] = []
        self.finish_request: dict[str, Any] | None = None
        self.finish_deadline = 0.0
        self.finished = False  # the server recorded the finish
        self.done = threading.Event()
        self.wake = threading.Event()
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
        """Wait (at most `timeout`) until what was logged before is sent or spooled."""
        if self.finish_request is not None:
            return  # finishing or finished: `finish` already waits for everything
        waiter = threading.Event()
        self.waiters.append(waiter)
        self.wake.set()
        waiter.wait(timeout)

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
        batch = self._drain()
        if self.transport is not None and self.refused is None and (force or now >= self.retry_at):
            self._create()
        if self.spooling or self.run_id is None or self.refused is not None:
            if not self._to_spool(batch):
                return  # kept in memory; the waiters are answered by a later tick
            if self.run_id is not None and (force or now >= self.retry_at):
                self._replay()
        else:
            self._send_live(batch)
            self._send_lines()
        for _ in range(waiting):
            self.waiters.popleft().set()

    def _drain(self) -> list[Point]:
        count = len(self.queue)
        return [self.queue.popleft() for _ in range(count)]

    def _create(self) -> None:
        if self.run_id is not None or self.transport is None:
            return
        try:
            self.run_id = self.transport.create_run(self.spool.meta["create"])
            self._after_success()
            self.spool.upload(self.url)["run_id"] = self.run_id
            if self.spool.exists:
                self.spool.save()
        except Unreachable as exc:
            self._after_failure(str(exc))
            self._start_spooling(str(exc))
        except Refused as exc:
            self._refuse(f"the server refused to create the run ({exc})")
        finally:
            self.created.set()

    def _send_live(self, batch: list[Point]) -> None:
        assert self.transport is not None and self.run_id is not None
        if not batch and time.monotonic() - self.last_post < HEARTBEAT_SECONDS:
            return
        for start in range(0, max(len(batch), 1), CHUNK_POINTS):
            chunk = batch[start : start + CHUNK_POINTS]
            try:
                self.transport.send_points(self.run_id, chunk)
                self._after_success()
            except Unreachable as exc:
                self._after_failure(str(exc))
                self._start_spooling(str(exc))
                self._to_spool(batch[start:])
                return
            except Refused as exc:
                self._refuse(f"the server refused points ({exc})")
                self._to_spool(batch[start:])
                return

    def _replay(self) -> None:
        assert self.transport is not None and self.run_id is not None
        upload = self.spool.upload(self.url)
        while True:
            points, offset = self.spool.unsent(self.url, CHUNK_POINTS)
            if not points:
                if self.spooling and self.failures == 0 and offset == self.spool.size:
                    self.spooling = False
                    if "spooling" in self.told and self.finish_request is None:
                        say(f"{self.url} answers again; the spooled points are sent")
                return
            try:
                self.transport.send_points(self.run_id, points)
            except Unreachable as exc:
                self._after_failure(str(exc))
                return
            except Refused as exc:
                self._refuse(f"the server refused spooled points ({exc})")
                return
            self._after_success()
            upload["sent_bytes"] = offset
            self.spool.save()

    def _send_lines(self) -> None:
        if not self.lines or self.transport is None or self.run_id is None:
            return
        count = len(self.lines)
        text = "".join(self.lines.popleft() for _ in range(count))
        # Console lines are a convenience: never worth a retry or a spool.
        with contextlib.suppress(Unreachable, Refused):
            self.transport.send_log(self.run_id, text)

    def _finish(self) -> None:
        request = self.finish_request or {}
        # Everything still in memory goes to disk first: whatever happens next, nothing is lost.
        if self._to_spool(self._drain()):
            self.spool.sync()
            self.spooling = True
        if self.run_id is None:  # never reached the server: a short wait, not the whole bound
            self.finish_deadline = min(self.finish_deadline, time.monotonic() + NEVER_UP_SECONDS)
        while self.transport is not None and self.refused is None:
            self._tick(force=True)
            if self.run_id is not None and not self.spooling:
                try:
                    self.transport.finish(self.run_id, request)
                    self.finished = True
                except Unreachable as exc:
                    self._after_failure(str(exc))
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
            time.sleep(0.25)
        if self.finished:
            self.spool.upload(self.url)["finished"] = True
        self.spool.meta["finish"] = request
        self.spool.close()
        if self.finished:
            shutil.rmtree(self.spool.folder, ignore_errors=True)  # all sent: nothing to keep
        else:
            with contextlib.suppress(OSError):  # already said, by _to_spool
                self.spool.save()
        if self.transport is not None:
            self.transport.close()

    # -- bookkeeping --------------------------------------------------------------------------

    def _to_spool(self, points: list[Point]) -> bool:
        """Append to the spool; when the disk refuses, keep them at the queue's head (False)."""
        try:
            self.spool.append(points)
            return True
        except OSError as exc:
            self.queue.extendleft(reversed(points))
            self._say_once("disk", f"cannot write the spool in {self.spool.folder} ({exc})")
            return False

    def _after_success(self) -> None:
        self.failures, self.retry_at = 0, 0.0
        self.last_post = time.monotonic()

    def _after_failure(self, _why: str) -> None:
        self.retry_at = time.monotonic() + BACKOFF[min(self.failures, len(BACKOFF) - 1)]
        self.failures += 1

    def _start_spooling(self, why: str) -> None:
        self.spooling = True
        self._say_once(
            "spooling",
            f"{why}; points are kept in {self.spool.folder} and sent when the server answers",
        )

    def _refuse(self, why: str) -> None:
        self.refused = why
        self.spooling = True
        self._say_once("refused", f"{why}; points are kept in {self.spool.folder}")

    def _say_once(self, topic: str, message: str) -> None:
        if topic not in self.told:
            self.told.add(topic)
            say(message)
