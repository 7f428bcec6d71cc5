"""How one run's points get to the server or, failing that, to its spool: the mechanics the
sending thread (`sender.Sender`) runs each tick.

Live, a batch is POSTed in chunks; a point the server will never take is set aside (found by
halving the chunk), not allowed to block the points after it. What cannot be sent (no server,
5xx, a timeout) goes to the spool, and from then on every new batch is appended behind it, so
points reach the server in the order they were logged. The spool is replayed with backoff
until it is empty, then sending is live again. When the disk refuses the spool too, points
stay in memory (bounded by MAX_QUEUE) and go live as soon as the server answers.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from trainboard.tracking.delivery import Backoff, send_points
from trainboard.tracking.spool import Point, Spool, new_folder_name
from trainboard.tracking.transport import Refused, Transport, Unreachable

CHUNK_POINTS = 5000  # points a request; far under the server's 100,000 and 16 MiB limits
TICK_POINTS = 10 * CHUNK_POINTS  # points a tick sends or spools at most: a backlog is chunked
MAX_QUEUE = 1_000_000  # points held in memory (~100 MB) before new ones are dropped
HEARTBEAT_SECONDS = 15.0  # an idle run tells the server it is alive this often, or as asked


def say(message: str) -> None:
    """One line on stderr, prefixed; never raises (stderr may be closed at exit)."""
    with contextlib.suppress(Exception):
        print(f"trainboard: {message}", file=sys.stderr, flush=True)


class Courier:
    """One run's connection to its server and its spool."""

    def __init__(
        self, *, url: str, token: str | None, create: dict[str, Any], offline: bool, spool_dir: Path
    ) -> None:
        self.url = url.rstrip("/")
        self.lines: deque[str] = deque(maxlen=10_000)  # console lines; dropped when unsent
        self.transport = None if offline else Transport(self.url, token)
        self.spool = Spool(spool_dir / new_folder_name(), url=self.url, create=create)
        self.run_id: int | None = None
        self.created = threading.Event()  # the first attempt to create the run is over
        self.spooling = offline
        self.refused: str | None = None  # why the server refused us; then only the spool
        self.backoff = Backoff()
        self.heartbeat = HEARTBEAT_SECONDS  # shortened to what the server asks for
        self.set_aside = 0  # points the server will never take, left out
        self.last_post = time.monotonic()
        self.told: set[str] = set()
        self.finish_request: dict[str, Any] | None = None
        self.wake = threading.Event()

    def _deliver(self, batch: list[Point], *, force: bool) -> list[Point]:
        """Send or spool `batch`; what could be neither (returned) stays in memory."""
        due = force or self.backoff.due(time.monotonic())
        if self.transport is not None and self.refused is None and due:
            self._create()
        if self.transport is None or self.run_id is None or self.refused is not None:
            return self._keep(batch)
        spooling = self.spooling  # read once: a `flush` may start spooling meanwhile
        if spooling and not (due and self._replay()):
            return self._keep(batch)
        # The spool is sent (or was never needed): this batch goes live, and a successful
        # POST (a heartbeat if the batch is empty) ends spooling.
        kept = self._send_live(batch, probe=spooling)
        if not kept:
            self._send_lines()
        return kept

    def _create(self) -> None:
        if self.run_id is not None or self.transport is None:
            return
        try:
            self.run_id = self.transport.create_run(self.spool.meta["create"])
            self.backoff.success()
            self.last_post = time.monotonic()
            self.spool.upload(self.url)["run_id"] = self.run_id
            if self.spool.exists:
                with contextlib.suppress(OSError):  # said by _keep when it matters
                    self.spool.save()
        except Unreachable as exc:
            self.backoff.failure()
            self._start_spooling(str(exc))
        except Refused as exc:
            self._refuse(f"the server refused to create the run ({exc})")
        finally:
            self.created.set()

    def _send_live(self, batch: list[Point], *, probe: bool) -> list[Point]:
        assert self.transport is not None and self.run_id is not None
        if self.transport.heartbeat:
            self.heartbeat = min(HEARTBEAT_SECONDS, self.transport.heartbeat)
        if not batch and not probe and time.monotonic() - self.last_post < self.heartbeat:
            return []
        for start in range(0, max(len(batch), 1), CHUNK_POINTS):
            try:
                self._post(batch[start : start + CHUNK_POINTS])
            except Unreachable as exc:
                self.backoff.failure()
                self._start_spooling(str(exc))
                return self._keep(batch[start:])
            except Refused as exc:
                self._refuse(f"the server refused points ({exc})")
                return self._keep(batch[start:])
        if probe:  # only a tick that found the spool empty ends spooling (`flush` starts it)
            self.spooling = False
            if "spooling" in self.told and self.finish_request is None:
                say(f"{self.url} answers again; the spooled points are sent")
        return []

    def _replay(self) -> bool:
        """Send the spool's unsent points, a tick's worth; True once none are left."""
        assert self.transport is not None and self.run_id is not None
        upload = self.spool.upload(self.url)
        for _ in range(TICK_POINTS // CHUNK_POINTS):
            try:
                points, offset = self.spool.unsent(self.url, CHUNK_POINTS)
            except (OSError, ValueError) as exc:  # an unreadable spool: what it holds is lost
                self._say_once("disk", f"cannot read the spool in {self.spool.folder} ({exc})")
                return True
            if not points:
                return True
            try:
                self._post(points)
            except Unreachable:
                self.backoff.failure()
                return False
            except Refused as exc:
                self._refuse(f"the server refused spooled points ({exc})")
                return False
            upload["sent_bytes"] = offset
            with contextlib.suppress(OSError):  # sent again after a crash: harmless
                self.spool.save()
        self.wake.set()  # more to replay: the next tick at once
        return False

    def _post(self, points: list[Point]) -> None:
        assert self.transport is not None and self.run_id is not None
        send_points(self.transport, self.run_id, points, self._set_aside)
        self.backoff.success()
        self.last_post = time.monotonic()

    def _send_lines(self) -> None:
        if not self.lines or self.transport is None or self.run_id is None:
            return
        count = len(self.lines)
        text = "".join(self.lines.popleft() for _ in range(count))
        # Console lines are a convenience: never worth a retry or a spool.
        with contextlib.suppress(Unreachable, Refused):
            self.transport.send_log(self.run_id, text)

    def _keep(self, points: list[Point]) -> list[Point]:
        """Append to the spool; what the disk refuses is returned, to stay in memory (bounded by
        MAX_QUEUE) and go live as soon as the server answers."""
        try:
            self.spool.append(points)
            return []
        except OSError as exc:
            self._say_once(
                "disk",
                f"cannot write the spool in {self.spool.folder} ({exc}); points are kept in "
                "memory until the server takes them",
            )
            return points

    def _set_aside(self, points: list[Point], why: str) -> None:
        self.set_aside += len(points)
        key, step, value, _ = points[0]
        self._say_once(
            "set aside",
            f"the server refused point {key}={value} at step {step} ({why}); "
            "refused points are left out, the others sent",
        )

    def _start_spooling(self, why: str) -> None:
        self.spooling = True
        self._say_once(
            "spooling",
            f"{why}; points are kept in {self.spool.folder} and sent when the server answers",
        )

    def _refuse(self, why: str) -> None:
        self.backoff.failure()
        self.refused = why
        self.spooling = True
        self._say_once("refused", f"{why}; points are kept in {self.spool.folder}")

    def _say_once(self, topic: str, message: str) -> None:
        if topic not in self.told:
            self.told.add(topic)
            say(message)
