"""Metric writes that arrive together commit together.

A training script's write is one small transaction, and SQLite takes one writer at a time: a
burst of them would queue for the write lock one by one, each paying for its own transaction
and its own pass over the run's row and downsampling pyramid. Here each write joins the batch
that is waiting; one thread commits a batch while the next one gathers. Within a batch, writes
to the same run (and attempt) become one write of all their points, in the order they came, so
the last value sent for a step still wins. Each run's writes are in a savepoint of their own:
one run refusing its points (finished, taken over) refuses only its own writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import anyio
from sqlalchemy import Engine

from trainboard.db import session_scope
from trainboard.store.external import log_points
from trainboard.store.metrics import Point


@dataclass
class PendingWrite:
    run_id: int
    attempt: int | None
    points: list[Point]
    deadline: float
    done: asyncio.Future[None] = field(repr=False)


class PointWriter:
    """Commits external runs' metric writes in batches, one batch at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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

    async def _commit_pending(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    errors = await anyio.to_thread.run_sync(self._commit, batch)
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

    def _commit(self, batch: list[PendingWrite]) -> dict[int, Exception]:
        """One transaction for the batch; what each refused write raised, by id."""
        by_run: dict[tuple[int, int | None], list[PendingWrite]] = {}
        for write in batch:
            by_run.setdefault((write.run_id, write.attempt), []).append(write)
        errors: dict[int, Exception] = {}
        with session_scope(self.engine) as session:
            for (run_id, attempt), writes in by_run.items():
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
