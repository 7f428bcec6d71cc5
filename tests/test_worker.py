"""The worker's loop body, `Worker.run_once()`, on a temporary SQLite with real child
processes: a run completes, fails, is cancelled, is taken over, and a dead worker's run is
recovered at the `now` the caller passes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from trainboard.config import Settings
from trainboard.db import init_db, make_engine, session_scope
from trainboard.models import Run
from trainboard.store import queue
from trainboard.store.checkpoints import list_checkpoints
from trainboard.store.files import folder_bytes
from trainboard.store.metrics import read_series
from trainboard.store.runs import cancel_run, create_job_run, get_run
from trainboard.worker.worker import Worker

from tests.helpers import tiny_run_spec, wait_until

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2.0  # a heartbeat every 0.5 s: cancels and take-overs are seen within it


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-home")


@pytest.fixture(scope="module")
def engine(home: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{home / 'trainboard.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def worker(home: Path, engine: Engine) -> Iterator[Worker]:
    """One worker for the module: each run takes its warm child and warms the next."""
    worker = Worker(Settings(home=home, lease_seconds=LEASE_SECONDS), engine, device="cpu")
    worker.register()
    yield worker
    worker.close()


def queued(engine: Engine, **overrides: Any) -> int:
    with session_scope(engine) as session:
        return create_job_run(session, spec=tiny_run_spec(**overrides)).id


def run_row(engine: Engine, run_id: int) -> Run:
    with session_scope(engine) as session:
        return get_run(session, run_id=run_id)


def meanwhile(engine: Engine, run_id: int, action: Callable[[], object]) -> threading.Thread:
    """Once the run has trained an epoch, do `action` from another thread, while this one is
    in run_once (the worker's children must be started by a thread that outlives them)."""
    errors: list[BaseException] = []

    def act() -> None:
        try:
            wait_for_epochs(engine, run_id)
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=act, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def joined(thread: threading.Thread) -> None:
    thread.join(timeout=60)
    assert not thread.is_alive()
    for error in thread.errors:  # type: ignore[attr-defined]
        raise error


def wait_for_epochs(engine: Engine, run_id: int, epochs: int = 1) -> None:
    wait_until(lambda: run_row(engine, run_id).epoch >= epochs, timeout=120)


def test_an_empty_queue_claims_nothing(worker: Worker, engine: Engine) -> None:
    with session_scope(engine) as session:
        assert queue.claim_next_run(session, worker_id="x", device="cpu", lease_seconds=1) is None
    assert worker.run_once() is False


def test_a_run_completes_with_its_metrics_checkpoints_and_log(
    worker: Worker, engine: Engine, home: Path
) -> None:
    run_id = queued(engine, epochs=2)
    assert worker.run_once() is True
    run = run_row(engine, run_id)
    assert (run.status, run.epoch, run.attempt, run.error) == ("completed", 2, 1, None)
    assert run.worker == worker.id
    with session_scope(engine) as session:
        series = read_series(session, run_id=run_id, keys=["val_loss"], max_points=10)
        checkpoints = [c.name for c in list_checkpoints(session, run_id=run_id)]
    assert series["val_loss"].steps == [1, 2]
    assert "epoch-0002" in checkpoints
    log = (home / "runs" / str(run_id) / "run.log").read_text()
    assert f"run {run_id} attempt 1 on cpu" in log and "completed after epoch 2" in log
    # Its size is recorded with its end, so listing runs walks no folder.
    assert run.disk_bytes == folder_bytes(home / "runs" / str(run_id)) > len(log)


def test_a_run_that_raises_in_its_child_fails_saying_why(worker: Worker, engine: Engine) -> None:
    run_id = queued(engine, dataset={"name": "no-such-upload"})
    assert worker.run_once() is True
    run = run_row(engine, run_id)
    assert run.status == "failed"
    assert "no-such-upload" in run.error


def test_a_cancel_stops_the_running_child(worker: Worker, engine: Engine) -> None:
    run_id = queued(engine, epochs=100_000)

    def cancel() -> None:
        with session_scope(engine) as session:
            cancel_run(session, run_id=run_id)

    canceller = meanwhile(engine, run_id, cancel)
    assert worker.run_once() is True
    joined(canceller)
    run = run_row(engine, run_id)
    assert run.status == "cancelled" and 1 <= run.epoch < 100_000


def test_a_run_taken_over_by_another_attempt_gets_nothing_written_by_the_first(
    worker: Worker, engine: Engine
) -> None:
    run_id = queued(engine, epochs=100_000, max_retries=1)
    taken: list[Run] = []

    def take_over() -> None:  # the lease is judged lost, and another worker claims the run
        with session_scope(engine) as session:
            recovered = queue.recover_expired_runs(session, now=time.time() + 3600)
            assert recovered == [(run_id, "requeued")]
            claim = queue.claim_next_run(session, worker_id="w2", device="cpu", lease_seconds=3600)
            assert claim == (run_id, 2)
        taken.append(run_row(engine, run_id))

    taker = meanwhile(engine, run_id, take_over)
    assert worker.run_once() is True
    joined(taker)
    run = run_row(engine, run_id)
    # The first attempt stopped without an end, a progress report or a metric of its own.
    assert (run.status, run.attempt, run.worker, run.error) == ("running", 2, "w2", None)
    assert (run.epoch, run.status_seq) == (taken[0].epoch, taken[0].status_seq)


def test_a_dead_workers_run_is_recovered_at_the_given_now_and_finished(
    worker: Worker, engine: Engine
) -> None:
    run_id = queued(engine, epochs=1, max_retries=1)
    with session_scope(engine) as session:  # a worker claims it, then dies without a trace
        queue.claim_next_run(session, worker_id="dead", device="cpu", lease_seconds=60)
    assert worker.run_once() is False  # its lease has not run out yet: nothing to claim
    assert worker.run_once(now=time.time() + 120) is True
    run = run_row(engine, run_id)
    assert (run.status, run.attempt, run.worker) == ("completed", 2, worker.id)


def test_a_run_whose_spec_cannot_run_any_more_fails_before_a_child_takes_it(
    worker: Worker, engine: Engine
) -> None:
    run_id = queued(engine)
    with session_scope(engine) as session:  # as if the model's plugin had been uninstalled
        run = get_run(session, run_id=run_id)
        run.spec = {**run.spec, "model": {"name": "gone-plugin", "params": {}}}
        session.add(run)
    warm = worker.prepare_child()
    assert worker.run_once() is True
    run = run_row(engine, run_id)
    assert run.status == "failed" and "model.name: unknown model 'gone-plugin'" in run.error
    assert worker.prepare_child() is warm  # the warm child waits for the next run
