"""Metric writes that arrive together commit together (api/pointwriter.py), on a real SQLite
database: every write answered, its points stored in order, a refused run refused alone, and
no batch past its budget of points."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from trainboard.api.pointwriter import BATCH_POINTS, PendingWrite, PointWriter
from trainboard.db import init_db, make_engine, session_scope
from trainboard.models import RunStatus
from trainboard.schemas import ExternalRunCreate
from trainboard.store.errors import Conflict
from trainboard.store.external import fail_silent_runs, log_points
from trainboard.store.metrics import read_series
from trainboard.store.runs import create_external_run, finish_external_run, get_run

from tests.helpers import run_async


def test_writes_gathered_in_one_batch_are_stored_in_order_and_refused_per_run(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'points.db'}")
    init_db(engine)
    with session_scope(engine) as session:
        open_run, finished = (
            create_external_run(session, request=ExternalRunCreate(kind="external")).id
            for _ in range(2)
        )
        finish_external_run(session, run_id=finished, status="completed", error=None)
    writer = PointWriter(engine)
    deadline = time.time() + 600

    async def burst() -> list[BaseException | None]:
        # The same step three times: the last value sent is the one kept.
        writes = [
            writer.write(
                run_id=finished if i % 4 == 3 else open_run,
                attempt=None,
                points=[("loss", 7, float(i), None)],
                deadline=deadline,
            )
            for i in range(12)
        ]
        return await asyncio.gather(*writes, return_exceptions=True)

    outcomes = run_async(burst())
    assert [o for i, o in enumerate(outcomes) if i % 4 != 3] == [None] * 9
    refused = [o for i, o in enumerate(outcomes) if i % 4 == 3]
    assert all(isinstance(o, Conflict) and "has finished" in str(o) for o in refused)
    with session_scope(engine) as session:
        series = read_series(session, run_id=open_run, keys=["loss"], max_points=100)
        assert series["loss"].steps == [7] and series["loss"].values == [10.0]
        assert read_series(session, run_id=finished, keys=["loss"], max_points=100) == {}
    engine.dispose()


@pytest.mark.parametrize(
    ("sizes", "batches"),
    [
        ([1, 1, 1], [[1, 1, 1]]),
        (
            [BATCH_POINTS // 2 + 1, BATCH_POINTS // 2, 1],
            [[BATCH_POINTS // 2 + 1], [BATCH_POINTS // 2, 1]],
        ),
        ([2 * BATCH_POINTS, 1], [[2 * BATCH_POINTS], [1]]),  # an oversized write goes alone
    ],
)
def test_a_batch_takes_writes_up_to_its_budget_of_points(
    sizes: list[int], batches: list[list[int]]
) -> None:
    async def take_all() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        writer = PointWriter(engine=None)  # type: ignore[arg-type]  # nothing is committed here
        writer.pending = [
            PendingWrite(1, None, [("k", s, 0.0, None)] * n, 0.0, loop.create_future())
            for s, n in enumerate(sizes)
        ]
        taken = []
        while writer.pending:
            taken.append([len(w.points) for w in writer._take_batch()])
        return taken

    assert run_async(take_all()) == batches


def test_a_write_reopens_a_run_failed_for_silence_and_heartbeats_push_its_deadline(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'silent.db'}")
    init_db(engine)
    now = time.time()
    with session_scope(engine) as session:
        run_id = create_external_run(session, request=ExternalRunCreate(kind="external")).id
        log_points(session, run_id=run_id, points=[], attempt=None, deadline=now - 1)
        assert fail_silent_runs(session, now=now, timeout=10) == [run_id]
    writer = PointWriter(engine)

    async def report() -> None:
        await writer.write(
            run_id=run_id, attempt=None, points=[("loss", 1, 0.5, None)], deadline=now + 60
        )
        await writer.write(run_id=run_id, attempt=None, points=[], deadline=now + 120)

    run_async(report())
    with session_scope(engine) as session:
        run = get_run(session, run_id=run_id)
        assert run.status == RunStatus.running and run.error is None
        assert run.lease_expires_at == pytest.approx(now + 120)
        assert read_series(session, run_id=run_id, keys=["loss"], max_points=10)["loss"].values == [
            0.5
        ]
    engine.dispose()
