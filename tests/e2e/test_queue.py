"""Queue and workers with real processes: claims, priorities, cancel, crashes, resume, restarts."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from trainboard.training.loop import train
from trainboard.training.sinks import MemorySink
from trainboard.training.spec import RunSpec
from trainboard.worker.child import torch_threads

from tests.helpers import tiny_spec, wait_until

pytestmark = pytest.mark.slow

FINAL = {"completed", "failed", "diverged", "cancelled"}
TIMING = {"epoch_seconds", "samples_per_second"}
LEASE = {"TRAINBOARD_LEASE_SECONDS": "2"}


def quick(**overrides: Any) -> dict[str, Any]:
    """The tests' tiny spec, smaller still: two epochs of an 8-unit MLP."""
    model = {"name": "mlp", "params": {"hidden_sizes": [8], "dropout": 0.0}}
    return tiny_spec(**{"model": model, "epochs": 2, "batch_size": 50} | overrides)


def slow(**overrides: Any) -> dict[str, Any]:
    """Several seconds of deterministic training with a checkpoint every epoch."""
    spec = {
        "name": "slow",
        "dataset": {"name": "digits"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [256, 256], "dropout": 0.2}},
        "optimizer": {"name": "adamw", "lr": 0.001},
        "epochs": 6,
        "batch_size": 4,
        "deterministic": True,
        "seed": 5,
    }
    return spec | overrides


def child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def submit(self, spec: dict[str, Any]) -> int:
        response = self.http.post("/api/runs", json=spec)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run(self, rid: int) -> dict[str, Any]:
        return self.http.get(f"/api/runs/{rid}").json()

    def wait_status(self, rid: int, statuses: set[str], timeout: float = 120) -> dict[str, Any]:
        return wait_until(
            lambda: (r := self.run(rid))["status"] in statuses and r,
            timeout=timeout,
            what=f"run {rid} to be {statuses}",
        )

    def epoch_series(self, rid: int) -> dict[str, list]:
        series = self.http.get(f"/api/runs/{rid}/metrics").json()["series"]
        return {k: s for k, s in series.items() if not k.startswith("step/")}


def reference_metrics(spec: dict[str, Any], tmp_path: Path) -> list[dict[str, float]]:
    """What an uninterrupted run of `spec` logs, trained on as many threads as a worker's run
    process uses (another count sums in another order, off in the last bits)."""
    sink = MemorySink()
    default = torch.get_num_threads()
    torch.set_num_threads(torch_threads(0, "cpu"))
    try:
        train(RunSpec.model_validate(spec), run_dir=tmp_path / "reference", sink=sink)
    finally:
        torch.set_num_threads(default)
    return [{k: v for k, v in e.items() if k not in TIMING} for e in sink.epochs]


def assert_one_point_per_epoch_matching(
    api: Api, rid: int, expected: list[dict[str, float]]
) -> None:
    series = api.epoch_series(rid)
    epochs = len(expected)
    for key in ("train_loss", "val_loss", "val_accuracy", "grad_norm", "lr"):
        assert series[key]["steps"] == list(range(1, epochs + 1)), key
        assert series[key]["values"] == [e[key] for e in expected], key


def test_two_workers_run_each_of_many_runs_exactly_once(start_server, start_worker) -> None:
    server = start_server()
    api = Api(server.url)
    ids = [api.submit(quick(name=f"r{i}")) for i in range(8)]
    start_worker(), start_worker()
    runs = [api.wait_status(rid, FINAL) for rid in ids]
    assert {r["status"] for r in runs} == {"completed"}
    assert {r["attempt"] for r in runs} == {1}
    assert len({r["worker"] for r in runs}) == 2  # both took part
    workers = api.http.get("/api/workers").json()
    assert len(workers) == 2 and {w["device"] for w in workers} == {"cpu"}
    for rid in ids:
        assert api.epoch_series(rid)["val_loss"]["steps"] == [1, 2]


def test_higher_priority_runs_first_then_oldest(start_server, start_worker) -> None:
    api = Api(start_server().url)
    low, high, low2 = (
        api.submit(quick(priority=0)),
        api.submit(quick(priority=10)),
        api.submit(quick(priority=0)),
    )
    start_worker()
    started = {rid: api.wait_status(rid, {"completed"})["started_at"] for rid in (low, high, low2)}
    assert started[high] < started[low] < started[low2]


def test_cancel_a_queued_run_at_once_and_a_running_one_within_a_step(
    start_server, start_worker
) -> None:
    api = Api(start_server().url)
    running, queued = api.submit(slow(epochs=200)), api.submit(quick())
    start_worker()
    wait_until(lambda: api.run(running)["epoch"] >= 1, timeout=120, what="the first epoch")
    assert api.http.post(f"/api/runs/{queued}/cancel", json={}).json()["status"] == "cancelled"
    api.http.post(f"/api/runs/{running}/cancel", json={})
    run = api.wait_status(running, FINAL, timeout=30)
    assert run["status"] == "cancelled" and run["epoch"] < 200
    assert api.http.get(f"/api/runs/{running}/checkpoints").json()  # kept
    assert api.run(queued)["started_at"] is None  # never ran


def slow_run_on_one_worker(
    start_server: Any, start_worker: Any, tmp_path: Path, epochs_done: int
) -> tuple[Api, Any, int, list[dict[str, float]]]:
    """A short lease, one worker training `slow()` past `epochs_done` epochs, and the metrics
    an uninterrupted run of the same spec produces."""
    spec = slow()
    expected = reference_metrics(spec, tmp_path)
    api = Api(start_server(**LEASE).url)
    worker = start_worker(**LEASE)
    rid = api.submit(spec)
    wait_until(lambda: api.run(rid)["epoch"] >= epochs_done, timeout=120, what="epochs done")
    return api, worker, rid, expected


def test_kill_9_of_a_worker_mid_run_resumes_from_the_last_checkpoint_elsewhere(
    start_server, start_worker, tmp_path: Path
) -> None:
    api, first, rid, expected = slow_run_on_one_worker(start_server, start_worker, tmp_path, 2)
    pid = first.process.pid
    children = child_pids(pid)
    os.kill(pid, signal.SIGSTOP)  # freeze it so it cannot react, then kill everything
    for child in children:
        os.kill(child, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    start_worker(**LEASE)
    wait_until(lambda: api.run(rid)["attempt"] == 2, timeout=60, what="a second attempt")
    print(f"killed run picked up again after {time.monotonic() - killed_at:.1f}s")
    run = api.wait_status(rid, FINAL)
    assert run["status"] == "completed" and run["attempt"] == 2
    log = api.http.get(f"/api/runs/{rid}/logs").text
    assert "resuming from epoch-000" in log
    assert_one_point_per_epoch_matching(api, rid, expected)


def run_process(worker_pid: int, run_id: int) -> int:
    """The worker's child that trains `run_id` (its output goes to that run's log)."""
    for pid in child_pids(worker_pid):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/1").endswith(f"runs/{run_id}/run.log"):
                return pid
    raise AssertionError(f"no process of worker {worker_pid} trains run {run_id}")


def test_a_run_process_killed_mid_run_fails_the_run_and_keeps_what_it_sent(
    start_server, start_worker
) -> None:
    api = Api(start_server().url)
    worker = start_worker()
    rid = api.submit(slow(epochs=50))
    wait_until(lambda: api.run(rid)["epoch"] >= 2, timeout=120, what="two epochs")
    os.kill(run_process(worker.process.pid, rid), signal.SIGKILL)
    run = api.wait_status(rid, FINAL, timeout=30)
    assert run["status"] == "failed" and "killed by SIGKILL" in run["error"]
    steps = api.epoch_series(rid)["val_loss"]["steps"]
    assert len(steps) >= 2 and steps == list(range(1, run["epoch"] + 1))
    kept = api.http.get(f"/api/runs/{rid}/checkpoints").json()
    assert kept and max(c["epoch"] for c in kept) <= run["epoch"]
    assert worker.process.poll() is None  # the worker lives on, ready for the next run
    assert api.wait_status(api.submit(quick()), FINAL)["status"] == "completed"


def database_is_free(database_url: str, run_id: int) -> bool:
    """Whether no frozen transaction holds what the replacement worker needs: SQLite's single
    write lock, or PostgreSQL's lock on the run's row."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0.2)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            connection.close()
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("SELECT id FROM run WHERE id = :id FOR UPDATE NOWAIT"), {"id": run_id}
            )
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def freeze_between_transactions(pids: list[int], database_url: str, run_id: int) -> None:
    """SIGSTOP the processes at a moment none of them is inside a write transaction (frozen
    inside one, they would hold a lock that nobody else could get until they wake up)."""

    def frozen_outside() -> bool:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if database_is_free(database_url, run_id):
            return True
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        return False

    wait_until(frozen_outside, timeout=30, interval=0.05, what="a moment between transactions")


def test_a_paused_worker_that_wakes_up_cannot_write_over_its_replacement(
    start_server, start_worker, tmp_path: Path, database_url: str
) -> None:
    api, first, rid, expected = slow_run_on_one_worker(start_server, start_worker, tmp_path, 1)
    frozen = [first.process.pid, *child_pids(first.process.pid)]
    freeze_between_transactions(frozen, database_url, rid)
    try:
        start_worker(**LEASE)
        wait_until(lambda: api.run(rid)["attempt"] == 2, timeout=60, what="the replacement")
    finally:  # a stopped process ignores SIGTERM: never leave one frozen
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    run = api.wait_status(rid, FINAL)
    assert run["status"] == "completed" and run["attempt"] == 2
    assert_one_point_per_epoch_matching(api, rid, expected)


def test_sigterm_requeues_the_running_run_and_a_restart_continues_it(
    start_server, start_worker
) -> None:
    api = Api(start_server().url)
    first = start_worker()
    rid = api.submit(slow(epochs=8))
    wait_until(lambda: api.run(rid)["epoch"] >= 1, timeout=120, what="the first epoch")
    first.stop(signal.SIGTERM)
    assert first.process.returncode == 0
    run = api.run(rid)
    assert run["status"] == "queued" and run["attempt"] == 1
    start_worker()
    run = api.wait_status(rid, FINAL)
    assert run["status"] == "completed" and run["attempt"] == 2
    assert api.epoch_series(rid)["val_loss"]["steps"] == list(range(1, 9))


def test_an_exception_fails_the_run_with_its_message_and_a_nan_diverges_it(
    start_server, start_worker
) -> None:
    api = Api(start_server().url)
    broken = api.submit(quick(early_stopping={"monitor": "no_such_metric"}))
    nan = api.submit(
        quick(
            dataset={"name": "diabetes"},
            grad_clip_norm=None,
            epochs=20,
            optimizer={"name": "sgd", "lr": 10.0, "params": {"momentum": 0.9}},
        )
    )
    start_worker()
    failed = api.wait_status(broken, FINAL)
    assert failed["status"] == "failed" and "no metric named 'no_such_metric'" in failed["error"]
    log = api.http.get(f"/api/runs/{broken}/logs").text
    assert "Traceback" in log
    # A CPU run leaves one of torch's threads' cores to the worker that records it.
    assert f"on cpu ({max(1, torch.get_num_threads() - 1)} torch threads)" in log
    diverged = api.wait_status(nan, FINAL)
    assert diverged["status"] == "diverged" and "lower learning rate" in diverged["error"]


def test_queued_runs_survive_a_server_restart(start_server) -> None:
    server = start_server(workers=0)
    api = Api(server.url)
    ids = [api.submit(quick()) for _ in range(2)]
    server.stop()
    restarted = start_server(workers=1)
    api = Api(restarted.url)
    assert {api.wait_status(rid, FINAL)["status"] for rid in ids} == {"completed"}
    assert api.http.get("/api/health").json()["workers"] == 1


def test_resume_continues_a_completed_run_with_more_epochs_and_a_cancelled_one_to_its_end(
    start_server,
) -> None:
    api = Api(start_server(workers=1).url)
    rid = api.submit(quick(epochs=3))
    api.wait_status(rid, {"completed"})
    # Nothing more to do.
    assert api.http.post(f"/api/runs/{rid}/resume", json={}).status_code == 409
    assert api.http.post(f"/api/runs/{rid}/resume", json={"epochs": 5}).status_code == 202
    run = api.wait_status(rid, FINAL)
    assert run["status"] == "completed" and run["epoch"] == 5
    assert api.epoch_series(rid)["val_loss"]["steps"] == [1, 2, 3, 4, 5]

    cancelled = api.submit(quick(epochs=400))
    wait_until(lambda: api.run(cancelled)["epoch"] >= 2, timeout=120, what="two epochs")
    assert api.http.post(f"/api/runs/{cancelled}/cancel", json={}).status_code == 202
    stopped_at = api.wait_status(cancelled, FINAL)
    assert stopped_at["status"] == "cancelled" and stopped_at["epoch"] < 400
    more = stopped_at["epoch"] + 2
    assert api.http.post(f"/api/runs/{cancelled}/resume", json={"epochs": more}).status_code == 202
    run = api.wait_status(cancelled, FINAL)
    assert (run["status"], run["epoch"]) == ("completed", more)
    assert api.epoch_series(cancelled)["val_loss"]["steps"] == list(range(1, more + 1))
