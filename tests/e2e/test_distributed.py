"""One run on two devices through a real server and worker (gloo on CPU): a rank killed with
SIGKILL fails the attempt and the run resumes to the metrics of a run never stopped; a cancel
stops every rank; a run that needs more devices than any worker has waits with a reason."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from playwright.sync_api import expect
from trainboard.training.sinks import MemorySink, NullSink
from trainboard.worker.child import torch_threads
from trainboard.worker.job import Job, run_job

from tests.helpers import Server, sqlite_server, wait_until

pytestmark = [pytest.mark.slow]

FINAL = {"completed", "failed", "diverged", "cancelled"}
TIMING = {"epoch_seconds", "samples_per_second"}


def two_devices(**overrides: Any) -> dict[str, Any]:
    """A few seconds an epoch of the digits MLP without dropout on two CPU processes, with a
    checkpoint every epoch."""
    spec = {
        "name": "two-devices",
        "dataset": {"name": "digits"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [256, 256], "dropout": 0.0}},
        "optimizer": {"name": "adamw", "lr": 0.001},
        "epochs": 3,
        "batch_size": 8,
        "seed": 3,
        "devices": 2,
    }
    return spec | overrides


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with sqlite_server(tmp_path_factory.mktemp("distributed-home")) as server:
        yield server


def submit(api: httpx.Client, spec: dict[str, Any]) -> int:
    response = api.post("/api/runs", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run(api: httpx.Client, rid: int) -> dict[str, Any]:
    return api.get(f"/api/runs/{rid}").json()


def wait_final(api: httpx.Client, rid: int, timeout: float = 240) -> dict[str, Any]:
    return wait_until(
        lambda: (r := run(api, rid))["status"] in FINAL and r, timeout=timeout, what=f"run {rid}"
    )


def rank_processes(run_id: int) -> list[int]:
    """The processes of ranks 1.. of `run_id` (they write to its log, as rank 0 does)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if b"trainboard.worker.rank" not in (entry / "cmdline").read_bytes():
                continue
            if os.readlink(entry / "fd" / "1").endswith(f"runs/{run_id}/run.log"):
                found.append(int(entry.name))
    return found


def uninterrupted(spec: dict[str, Any], tmp_path: Path) -> list[dict[str, float]]:
    """What the run logs when nothing stops it, on the worker's torch threads."""
    sink, default = MemorySink(), torch.get_num_threads()
    torch.set_num_threads(torch_threads(0, "cpu"))
    job = Job(1, 1, "cpu", spec, tmp_path / "reference", tmp_path / "uploads")
    try:
        job.run_dir.mkdir()
        run_job(job, sink=sink, checkpoints=NullSink(), should_stop=lambda: None)
    finally:
        torch.set_num_threads(default)
    return [{k: v for k, v in e.items() if k not in TIMING} for e in sink.epochs]


def test_a_rank_killed_mid_run_fails_the_attempt_and_the_run_resumes_to_the_same_metrics(
    api: httpx.Client, tmp_path: Path
) -> None:
    spec = two_devices()
    rid = submit(api, spec)
    wait_until(lambda: run(api, rid)["epoch"] >= 1, timeout=120, what="one epoch")
    ranks = wait_until(lambda: rank_processes(rid), timeout=30, what="rank 1's process")
    assert len(ranks) == 1  # two devices: rank 0 is the worker's child, rank 1 its own process
    os.kill(ranks[0], signal.SIGKILL)

    ended = wait_final(api, rid)
    assert ended["status"] == "completed" and ended["attempt"] == 2, ended
    assert ended["devices"] == 2 and ended["queue_reason"] is None
    log = api.get(f"/api/runs/{rid}/logs").text
    assert "rank 1's process was killed by SIGKILL" in log
    assert "resuming from epoch-000" in log
    series = api.get(f"/api/runs/{rid}/metrics").json()["series"]
    expected = uninterrupted(spec, tmp_path)
    for key in ("train_loss", "val_loss", "val_accuracy", "grad_norm", "lr"):
        assert series[key]["steps"] == [1, 2, 3], key  # one point per epoch
        assert series[key]["values"] == pytest.approx([e[key] for e in expected], rel=1e-5), key
    # Rank 0 kept the checkpoints, in the format a one-device run has.
    kept = api.get(f"/api/runs/{rid}/checkpoints").json()
    assert kept and max(c["epoch"] for c in kept) == 3


def test_cancel_stops_every_rank(api: httpx.Client) -> None:
    rid = submit(api, two_devices(epochs=200))
    wait_until(lambda: run(api, rid)["epoch"] >= 1, timeout=120, what="one epoch")
    ranks = wait_until(lambda: rank_processes(rid), timeout=30, what="rank 1's process")
    assert api.post(f"/api/runs/{rid}/cancel", json={}).status_code == 202
    ended = wait_final(api, rid, timeout=60)
    assert ended["status"] == "cancelled" and ended["epoch"] < 200
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in ranks),
        timeout=15,
        what="rank 1 to exit",
    )


def test_a_run_needing_more_devices_than_any_worker_has_waits_with_a_reason(
    api: httpx.Client, site: Server, page: Any
) -> None:
    cores = len(os.sched_getaffinity(0))  # what a CPU worker offers
    if cores + 1 > 64:
        pytest.skip("this machine has as many cores as a run may ask for")
    wide = submit(api, two_devices(devices=cores + 1, batch_size=64))
    narrow = submit(api, two_devices(devices=1, epochs=1, batch_size=64))
    # The worker passes over the wider run, older as it is, and trains the next.
    assert wait_final(api, narrow)["status"] == "completed"
    waiting = run(api, wide)
    assert waiting["status"] == "queued" and waiting["attempt"] == 0
    reason = waiting["queue_reason"]
    assert f"{cores + 1} devices" in reason and f"at most {cores}" in reason
    listed = api.get("/api/runs", params={"status": "queued"}).json()["items"]
    assert [r["queue_reason"] for r in listed if r["id"] == wide] == [reason]

    page.goto(f"{site.url}/#/run/{wide}")
    expect(page.locator("#queue-reason")).to_contain_text(f"{cores + 1} devices")
    assert page.js_errors == []
    assert api.post(f"/api/runs/{wide}/cancel", json={}).status_code == 202
