"""Metric writes that arrive together commit together.

A training script's write is one small transaction, and SQLite takes one writer at a time: a
burst of them would queue for the write lock one by one, each paying for its own transaction
and its own pass over the run's row and downsampling pyramid. Here each write joins the batch
that is waiting; one thread commits a batch while the next one gathers. Within a batch, writes
to the same run (and attempt) become one write of all their points, in the order they came, so
the last value sent for a step still wins. Each run's writes are in a savepoint of their own:
one run refusing its points (finished, taken over) refuses only its own writes. Runs are
written in id order, the order in which the silent-run keeper locks them too (PostgreSQL).

The batches commit on a thread of the writer's own, handed each batch at once: the shared
thread pool's hand-off first yields to the event loop, and under a burst the batch then waited
behind every request the loop had taken in (~50 ms for 128). Reads that get their turn while a
batch commits wait for it (see `admission.WritesFirst`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine

from trainboard.admission import WritesFirst
from trainboard.db import session_scope
from trainboard.store.external import log_points
from trainboard.store.metrics import Point

# A batch takes writes up to about this many points (and always one): a transaction holds the
# write lock while it lasts, and the heartbeats in it wait for the largest write.
BATCH_POINTS = 50_000


@dataclass
class PendingWrite:
    run_id: int
    attempt: int | None
    points: list[Point]
    deadline: float
    done: asyncio.Future[None] = field(repr=False)


class PointWriter:
    """Commits external runs' metric writes in batches, one batch at a time; `close` when the
    server stops."""

    def __init__(self, engine: Engine, writes: WritesFirst | None = None) -> None:
        self.engine = engine
        self.writes = writes or WritesFirst()
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="point-writer")
        self.pending: list[PendingWrite] = []
        self.committing: asyncio.Task[None] | None = None  # held: the loop keeps weak refs

    async def write(
        self, *, run_id: int, attempt: int | None, points: list[Point], deadline: float
    ) -> None:
        """Store `points` for the run (none: a heartbeat); raises what log_points raises."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(PendingWrite(run_id, attempt, points, deadline, done))
        if self.committing is None:
            self.committing = asyncio.get_running_loop().create_task(self._commit_pending())
        await done

    def close(self) -> None:
        """Wait for the batch being committed, if any, and stop the writer's thread."""
        self.thread.shutdown(wait=True)

    async def _commit_pending(self) -> None:
        batch: list[PendingWrite] = []
        try:
            while self.pending:
                batch = self._take_batch()
                try:
                    with self.writes.writing():
                        errors = await asyncio.get_running_loop().run_in_executor(
                            self.thread, self._commit, batch
                        )
                except Exception as exc:  # the transaction itself failed: every write in it
                    errors = {id(w): exc for w in batch}
                for write in batch:
                    if write.done.done():  # its request went away
                        continue
                    error = errors.get(id(write))
                    if error is None:
                        write.done.set_result(None)
                    else:
                        write.done.set_exception(error)
        finally:
            self.committing = None
            for write in batch + self.pending:  # unanswered only if the task was cancelled
                if not write.done.done():
                    write.done.set_exception(RuntimeError("the server stopped"))
            self.pending = []

    def _take_batch(self) -> list[PendingWrite]:
        taken, points = 0, 0
        for write in self.pending:
            if taken and points + len(write.points) > BATCH_POINTS:
                break
            taken, points = taken + 1, points + len(write.points)
        batch, self.pending = self.pending[:taken], self.pending[taken:]
        return batch

    def _commit(self, batch: list[PendingWrite]) -> dict[int, Exception]:
        """One transaction for the batch; what each refused write raised, by id."""
        by_run: dict[tuple[int, int | None], list[PendingWrite]] = {}
        for write in batch:
            by_run.setdefault((write.run_id, write.attempt), []).append(write)
        errors: dict[int, Exception] = {}
        with session_scope(self.engine) as session:
            for (run_id, attempt), writes in sorted(by_run.items(), key=_run_order):
                points = [p for w in writes for p in w.points]
                try:
                    with session.begin_nested():
                        log_points(
                            session,
                            run_id=run_id,
                            points=points,
                            attempt=attempt,
                            deadline=max(w.deadline for w in writes),
                        )
                except Exception as exc:
                    errors.update((id(w), exc) for w in writes)
        return errors


def _run_order(group: tuple[tuple[int, int | None], list[PendingWrite]]) -> tuple[int, int]:
    (run_id, attempt), _writes = group
    return run_id, -1 if attempt is None else attempt
