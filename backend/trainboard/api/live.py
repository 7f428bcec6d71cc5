"""One source of live events per run: a single poller fans out what changed to every stream.

Once a tick, the poller reads the heads (metric, checkpoint and status sequence numbers) of
every watched run in one query, and then, only for runs whose heads moved, the new points,
checkpoint rows and the run itself. Each run's `Feed` keeps the recent points and rows, so a
stream (api/events.py) takes what it has not sent from memory: open streams cost no database
reads while nothing changes, however many there are. A stream that starts behind what its feed
holds (a reconnect after a long while) reads its own backlog once, then follows the feed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from sqlalchemy import Engine, bindparam, text
from sqlmodel import Session

from trainboard.api.views import NOT_ASKED, checkpoint_public, offered_devices, run_public
from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.models import FINAL_STATUSES, RunStatus
from trainboard.store.checkpoints import checkpoints_since
from trainboard.store.metrics import points_since
from trainboard.store.runs import get_run

log = logging.getLogger("trainboard")

POLL_SECONDS = 0.1
POINTS_PER_READ = 5000
# Points a feed keeps for streams that lag behind it; an older cursor reads the database.
FEED_POINTS = 20_000

Point = dict[str, Any]


@dataclass
class Heads:
    """How far a feed has read: the last metric, checkpoint and status sequence numbers."""

    metric: int = 0
    checkpoint: int = 0
    status: int = 0


@dataclass
class Update:
    """What one tick read for one run; applied to its feed on the event loop."""

    run_id: int
    heads: Heads
    points: list[tuple[int, Point]] = field(default_factory=list)
    checkpoints: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    run: dict[str, Any] | None = None
    final: bool = False
    ended: bool = False
    gone: bool = False
    log_size: int = 0


@dataclass
class Feed:
    """The recent history of one run, shared by all of its open streams.

    Every point with a sequence number in (points_base, heads.metric] is in `points`, and
    every checkpoint row in (checkpoints_base, heads.checkpoint] is in `checkpoints`."""

    run_id: int
    heads: Heads | None = None  # None until the first tick has read the run
    points_base: int = 0
    points: list[tuple[int, Point]] = field(default_factory=list)
    checkpoints_base: int = 0
    checkpoints: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    run: dict[str, Any] | None = None
    final: bool = False  # the run has a final status
    ended: bool = False  # ... and everything it wrote has been read
    gone: bool = False  # the run was deleted
    log_size: int = 0
    streams: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def points_after(self, seq: int, limit: int) -> list[tuple[int, Point]]:
        start = bisect.bisect_right(self.points, seq, key=lambda item: item[0])
        return self.points[start : start + limit]

    def checkpoints_after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        return [row for row in self.checkpoints if row[0] > seq]

    def apply(self, update: Update) -> None:
        """Take in what a tick read; wake the streams only if something is new."""
        new = (update.heads, update.gone, update.ended, update.log_size) != (
            self.heads,
            self.gone,
            self.ended,
            self.log_size,
        )
        if self.heads is None:  # the first read: the feed's history starts here
            self.points_base, self.checkpoints_base = update.heads.metric, update.heads.checkpoint
        self.heads, self.gone = update.heads, update.gone
        self.final, self.ended = update.final, update.ended
        self.points += update.points
        if len(self.points) > 2 * FEED_POINTS:
            self.points_base = self.points[-FEED_POINTS - 1][0]
            self.points = self.points[-FEED_POINTS:]
        self.checkpoints += update.checkpoints
        self.run = update.run or self.run
        self.log_size = update.log_size
        if new:
            changed, self.changed = self.changed, anyio.Event()
            changed.set()


class LiveEvents:
    """The poller and the feeds of the runs that open streams watch."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.feeds: dict[int, Feed] = {}
        self.wake = anyio.Event()

    @property
    def streams(self) -> int:
        """Open streams, all runs together (for /api/health)."""
        # list(): a sync handler reads this on a worker thread while the loop edits `feeds`.
        return sum(feed.streams for feed in list(self.feeds.values()))

    @contextlib.asynccontextmanager
    async def watch(self, run_id: int) -> AsyncIterator[Feed]:
        """The run's feed, ready (read once), for as long as the stream is open."""
        feed = self.feeds.setdefault(run_id, Feed(run_id))
        feed.streams += 1
        try:
            while feed.heads is None and not feed.gone:
                changed = feed.changed
                self.wake.set()
                await changed.wait()
            yield feed
        finally:
            feed.streams -= 1
            if feed.streams == 0 and self.feeds.get(run_id) is feed:
                del self.feeds[run_id]

    async def run(self) -> None:
        """Poll while the app lives: one read per tick for all watched runs."""
        while True:
            self.wake = anyio.Event()  # before the read: a stream that opens meanwhile wakes us
            try:
                await self.tick()
            except Exception:  # a database hiccup must not end live events: the next tick
                log.exception("reading live events failed")
            with anyio.move_on_after(POLL_SECONDS):
                await self.wake.wait()

    async def tick(self) -> None:
        feeds = dict(self.feeds)
        if not feeds:
            return
        known = {run_id: (feed.heads, feed.final) for run_id, feed in feeds.items()}
        for update in await anyio.to_thread.run_sync(self.read, known):
            feed = feeds[update.run_id]
            # A feed whose streams all left, and was made anew meanwhile, reads from scratch.
            if self.feeds.get(update.run_id) is feed:
                feed.apply(update)

    def read(self, known: dict[int, tuple[Heads | None, bool]]) -> list[Update]:
        """What changed since `known` for each run, in one read transaction (one snapshot:
        a final status is never seen without the points written before it)."""
        updates: list[Update] = []
        with session_scope(reader(self.engine)) as session:
            rows = session.exec(
                text(
                    "SELECT id, metric_seq, checkpoint_seq, status_seq FROM run WHERE id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                params={"ids": list(known)},
            ).all()
            heads = {int(r[0]): Heads(int(r[1]), int(r[2]), int(r[3])) for r in rows}
            for run_id, (seen, final) in known.items():
                now = heads.get(run_id)
                if now is None:
                    updates.append(Update(run_id, Heads(), gone=True))
                    continue
                first = seen is None
                seen = seen or Heads(now.metric, now.checkpoint, 0)
                update = Update(run_id, Heads(seen.metric, seen.checkpoint, now.status))
                if now.metric > seen.metric:
                    update.points = new_points(session, run_id, seen.metric, POINTS_PER_READ)
                    update.heads.metric = update.points[-1][0] if update.points else now.metric
                if now.checkpoint > seen.checkpoint:
                    update.checkpoints = new_checkpoints(session, run_id, seen.checkpoint)
                    update.heads.checkpoint = max(
                        [seq for seq, _ in update.checkpoints], default=now.checkpoint
                    )
                if first or now.status > seen.status:
                    run = get_run(session, run_id=run_id)
                    queued = run.status == RunStatus.queued
                    offered = offered_devices(session) if queued else NOT_ASKED
                    # JSON mode writes NaN and ±Infinity in the summary as null.
                    update.run = run_public(run, self.settings, offered).model_dump(mode="json")
                    update.heads.status = run.status_seq
                    final = run.status in FINAL_STATUSES
                update.final = final
                update.ended = (
                    final
                    and update.heads.metric >= now.metric
                    and update.heads.checkpoint >= now.checkpoint
                )
                updates.append(update)
        for update in updates:
            update.log_size = log_size(self.settings, update.run_id)
        return updates


def new_points(session: Session, run_id: int, after: int, limit: int) -> list[tuple[int, Point]]:
    """Up to `limit` points written after sequence number `after`, each with its number."""
    rows = points_since(session, run_id=run_id, after_seq=after, limit=limit)
    return [(row[4], point_dict(row)) for row in rows]


def new_checkpoints(session: Session, run_id: int, after: int) -> list[tuple[int, dict[str, Any]]]:
    """Checkpoint rows changed after sequence number `after`, as the API shows them."""
    rows = checkpoints_since(session, run_id=run_id, after_seq=after)
    return [(row.seq, checkpoint_public(row).model_dump(mode="json")) for row in rows]


def point_dict(row: tuple[str, int, float | None, float, int]) -> Point:
    key, step, value, timestamp, _seq = row
    finite = value if value is None or math.isfinite(value) else None
    return {"key": key, "step": step, "value": finite, "timestamp": timestamp}


def log_size(settings: Settings, run_id: int) -> int:
    try:
        return (settings.run_dir(run_id) / "run.log").stat().st_size
    except OSError:
        return 0


def start(live: LiveEvents) -> asyncio.Task[None]:
    """Run the poller on the current event loop (the app's lifespan owns the task)."""
    return asyncio.get_running_loop().create_task(live.run())
