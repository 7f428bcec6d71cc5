"""Remote workers (`trainboard worker --server URL --token T`): a worker with no database URL
and an empty data folder trains through the server's REST API alone. Its run is the same as a
local worker's (metrics, TensorBoard files, checkpoints); killed mid-run, its run resumes on
another worker; a server that stops answering for a moment loses nothing; its token opens
nothing but the workers' routes."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.e2e.test_queue import child_pids
from tests.helpers import Server, WorkerProcess, process_env, wait_until

pytestmark = pytest.mark.slow

TOKEN, WORKER_TOKEN = "user-secret", "worker-secret"
FINAL = {"completed", "failed", "diverged", "cancelled"}
SPEC: dict[str, Any] = {
    "name": "remote",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "params": {"hidden_sizes": [64], "dropout": 0.0}},
    "optimizer": {"name": "adamw", "lr": 0.003},
    "epochs": 3,
    "batch_size": 16,
    "seed": 7,
    "deterministic": True,
    "log_every_steps": 20,
}
WORKER = [sys.executable, "-m", "trainboard", "worker"]
EPOCH_KEYS = ("train_loss", "val_loss", "val_accuracy", "grad_norm", "lr")


class RemoteWorker:
    """A `trainboard worker --server` process with an empty folder of its own."""

    def __init__(self, folder: Path, url: str, token: str = WORKER_TOKEN) -> None:
        folder.mkdir(parents=True)
        self.home = folder
        env = {k: v for k, v in process_env(folder, "").items() if k != "TRAINBOARD_DATABASE_URL"}
        self.log = folder.parent / f"{folder.name}.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*WORKER, "--server", url, "--token", token, "--device", "cpu"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def site(home: Path, tmp_path: Path) -> Iterator[Server]:
    env = {
        "TRAINBOARD_TOKEN": TOKEN,
        "TRAINBOARD_WORKER_TOKEN": WORKER_TOKEN,
        "TRAINBOARD_LEASE_SECONDS": "4",
    }
    server = Server(home, f"sqlite:///{home / 'trainboard.db'}", env_extra=env).start()
    yield server
    server.stop()


@pytest.fixture
def api(site: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=site.url, timeout=30, headers=headers) as client:
        yield client


@pytest.fixture
def remote(site: Server, tmp_path: Path) -> Iterator[Any]:
    started: list[RemoteWorker] = []

    def start(name: str) -> RemoteWorker:
        worker = RemoteWorker(tmp_path / name, site.url)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def submit(api: httpx.Client, spec: dict[str, Any]) -> int:
    response = api.post("/api/runs", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_final(api: httpx.Client, rid: int, timeout: float = 180) -> dict[str, Any]:
    return wait_until(
        lambda: (r := api.get(f"/api/runs/{rid}").json())["status"] in FINAL and r,
        timeout=timeout,
        what=f"run {rid} to end",
    )


def epoch_series(api: httpx.Client, rid: int) -> dict[str, Any]:
    series = api.get(f"/api/runs/{rid}/metrics").json()["series"]
    return {k: (series[k]["steps"], series[k]["values"]) for k in EPOCH_KEYS}


def scalars(home: Path, rid: int) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(home / "runs" / str(rid) / "tensorboard"))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if not any(timing in tag for timing in ("system/", "seconds", "samples_per_second"))
    }


def weights(home: Path, rid: int) -> dict[str, dict[str, torch.Tensor]]:
    folder = home / "runs" / str(rid) / "checkpoints"
    return {
        p.name: torch.load(p, weights_only=True)["model_state_dict"] for p in folder.glob("*.pt")
    }


def test_a_remote_worker_trains_a_run_as_a_local_worker_does(
    site: Server, api: httpx.Client, remote: Any, home: Path, tmp_path: Path
) -> None:
    worker = remote("remote-a")
    far = submit(api, SPEC)
    assert wait_final(api, far)["status"] == "completed"
    run = api.get(f"/api/runs/{far}").json()
    assert run["worker"].startswith(os.uname().nodename) and run["attempt"] == 1
    log = api.get(f"/api/runs/{far}/logs").text
    assert f"run {far} attempt 1 on cpu" in log and "completed after epoch 3" in log
    # Nothing of the run stays in the remote worker's folder, and it never had a database.
    assert not list(worker.home.rglob("*.db")) and not list(worker.home.rglob("*.pt"))

    worker.stop()
    local = WorkerProcess(home, site.database_url).start()
    try:
        near = submit(api, SPEC)
        assert wait_final(api, near)["status"] == "completed"
    finally:
        local.stop()
    assert epoch_series(api, far) == epoch_series(api, near)
    assert scalars(home, far) == scalars(home, near) != {}
    far_weights, near_weights = weights(home, far), weights(home, near)
    assert sorted(far_weights) == sorted(near_weights) == ["epoch-0002.pt", "epoch-0003.pt"]
    for name, state in far_weights.items():
        assert all(torch.equal(state[k], near_weights[name][k]) for k in state), name
    listed = api.get(f"/api/runs/{far}/checkpoints").json()
    assert [c["id"] for c in listed] == ["epoch-0002", "epoch-0003"]


def test_the_worker_token_opens_only_the_workers_routes(site: Server) -> None:
    worker = {"Authorization": f"Bearer {WORKER_TOKEN}"}
    with httpx.Client(base_url=site.url, timeout=30) as http:
        assert http.get("/api/runs", headers=worker).status_code == 401
        beat = {"worker_id": "w-1", "device": "cpu", "devices": 1}
        assert http.post("/api/remote/beat", json=beat, headers=worker).status_code == 204
        assert http.post("/api/remote/beat", json=beat).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert http.post("/api/remote/claim", json=beat, headers=wrong).status_code == 401
        bad = http.post("/api/remote/claim", json={**beat, "devices": 0}, headers=worker)
        assert bad.status_code == 422 and "devices" in bad.text
        too_big = http.post("/api/remote/beat", json={**beat, "pid": 2**31}, headers=worker)
        assert too_big.status_code == 422 and "pid" in too_big.text  # a column's bound, not a 500


def test_a_killed_remote_worker_s_run_resumes_on_another(api: httpx.Client, remote: Any) -> None:
    slow = {**SPEC, "epochs": 4, "batch_size": 4, "model": {"name": "mlp"}}
    first = remote("remote-first")
    rid = submit(api, slow)
    wait_until(lambda: api.get(f"/api/runs/{rid}").json()["epoch"] >= 2, timeout=120, what="2")
    children = child_pids(first.process.pid)
    os.kill(first.process.pid, signal.SIGKILL)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    remote("remote-second")
    run = wait_final(api, rid)
    assert run["status"] == "completed" and run["attempt"] == 2
    assert "resuming from epoch-000" in api.get(f"/api/runs/{rid}/logs").text
    for key, (steps, _values) in epoch_series(api, rid).items():
        assert steps == [1, 2, 3, 4], key


def test_a_server_that_stops_answering_for_a_moment_loses_nothing(
    site: Server, api: httpx.Client, remote: Any
) -> None:
    remote("remote-blip")
    rid = submit(api, {**SPEC, "epochs": 3, "batch_size": 8})
    wait_until(lambda: api.get(f"/api/runs/{rid}").json()["epoch"] >= 1, timeout=120, what="1")
    assert site.process is not None
    site.process.send_signal(signal.SIGSTOP)  # shorter than the 4 s lease
    time.sleep(2)  # the pause itself is what is tested
    site.process.send_signal(signal.SIGCONT)
    run = wait_final(api, rid)
    assert run["status"] == "completed" and run["attempt"] == 1
    for key, (steps, _values) in epoch_series(api, rid).items():
        assert steps == [1, 2, 3], key


def test_a_remote_worker_trains_on_an_uploaded_table(api: httpx.Client, remote: Any) -> None:
    rows = ["x1,x2,colour,y"] + [
        f"{i % 7 / 7:.3f},{i % 5},{('red', 'green', 'blue')[i % 3]},{int(i % 7 > 3)}"
        for i in range(120)
    ]
    made = api.post(
        "/api/datasets",
        files={"file": ("table.csv", ("\n".join(rows) + "\n").encode())},
        data={"target": "y"},
    )
    assert made.status_code == 201, made.text
    remote("remote-table")
    rid = submit(api, {"dataset": {"name": "table"}, "model": {"name": "mlp"}, "epochs": 2})
    run = wait_final(api, rid)
    assert run["status"] == "completed", run["error"]
    assert epoch_series(api, rid)["val_loss"][0] == [1, 2]


def test_a_stale_attempt_writes_nothing_through_any_route(
    site: Server, api: httpx.Client, home: Path
) -> None:
    """Worker A's lease runs out and B takes the run; whatever A sends then gets 409 and
    changes nothing: not a point, not the checkpoint file B wrote, not the run's end."""
    headers = {"Authorization": f"Bearer {WORKER_TOKEN}"}
    http = httpx.Client(base_url=site.url, timeout=30, headers=headers)
    rid = submit(api, {**SPEC, "epochs": 5})

    def claim(worker: str) -> dict[str, Any] | None:
        body = {"worker_id": worker, "device": "cpu", "devices": 1}
        return http.post("/api/remote/claim", json=body).json()["job"]

    def put(attempt: int, weight: float) -> httpx.Response:
        data, digest = torch_file({"model_state_dict": {"w": torch.tensor([weight])}, "epoch": 1})
        return http.put(
            f"/api/remote/runs/{rid}/attempts/{attempt}/checkpoints/1",
            params={"sha256": digest, "metrics": '{"val_loss": 1.0}'},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def report(attempt: int, batch: int, value: float) -> httpx.Response:
        data, _ = torch_file([["step", 1, {"step/train_loss": value}]])
        return http.post(
            f"/api/remote/runs/{rid}/attempts/{attempt}/reports",
            params={"batch": batch},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    assert claim("worker-a")["attempt"] == 1
    assert report(1, 1, 0.5).status_code == 204
    assert report(1, 1, 0.9).status_code == 204  # the same batch again: skipped
    second = wait_until(lambda: claim("worker-b"), timeout=30, what="the lease to run out")
    assert second["attempt"] == 2
    assert put(2, 2.0).status_code == 204
    kept = home / "runs" / str(rid) / "checkpoints" / "epoch-0001.pt"
    assert torch.load(kept, weights_only=True)["model_state_dict"]["w"].item() == 2.0

    assert put(1, 1.0).status_code == 409
    assert report(1, 2, 7.0).status_code == 409
    log = http.post(
        f"/api/remote/runs/{rid}/attempts/1/log",
        params={"offset": 0},
        content=b"stale line\n",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert log.status_code == 409
    ended = {
        "end": {"kind": "outcome", "exit": "completed", "epoch": 5, "message": "", "summary": {}}
    }
    assert http.post(f"/api/remote/runs/{rid}/attempts/1/end", json=ended).status_code == 409
    lease = http.post(f"/api/remote/runs/{rid}/attempts/1/lease", json={})
    assert lease.status_code == 409

    assert torch.load(kept, weights_only=True)["model_state_dict"]["w"].item() == 2.0
    steps = api.get(f"/api/runs/{rid}/metrics", params={"keys": "step/train_loss"}).json()
    assert steps["series"]["step/train_loss"]["values"] == [0.5]
    run = api.get(f"/api/runs/{rid}").json()
    assert run["status"] == "running" and run["attempt"] == 2
    assert "stale line" not in api.get(f"/api/runs/{rid}/logs").text
    bad = http.put(
        f"/api/remote/runs/{rid}/attempts/2/checkpoints/2",
        params={"sha256": "0" * 64},
        content=b"not a checkpoint",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert bad.status_code == 422 and "sha256" in bad.text
    assert http.post(f"/api/remote/runs/{rid}/attempts/2/end", json=ended).json() == {
        "status": "completed"
    }


def torch_file(obj: Any) -> tuple[bytes, str]:
    """`obj` as `torch.save` writes it, and the file's sha256."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def test_a_claim_takes_over_a_lost_attempt_that_left_rows_unwritten(
    database_url: str, home: Path
) -> None:
    """Worker A's second checkpoint waits in the server for its rows' next batch when A goes
    silent. B's claim takes the run over, and the rows A left behind are dropped without
    waiting on the run's row, which the claim's own transaction holds (PostgreSQL waited
    forever, SQLite for its busy timeout)."""
    env = {"TRAINBOARD_WORKER_TOKEN": WORKER_TOKEN, "TRAINBOARD_LEASE_SECONDS": "2"}
    server = Server(home, database_url, env_extra=env).start()
    headers = {"Authorization": f"Bearer {WORKER_TOKEN}"}
    try:
        with httpx.Client(base_url=server.url, timeout=20, headers=headers) as http:
            rid = http.post("/api/runs", json={**SPEC, "epochs": 5}, headers={}).json()["id"]

            def claim(worker: str) -> dict[str, Any] | None:
                body = {"worker_id": worker, "device": "cpu", "devices": 1}
                return http.post("/api/remote/claim", json=body).json()["job"]

            assert claim("worker-a")["attempt"] == 1
            for epoch in (1, 2):  # the second's rows wait for the next batch
                data, digest = torch_file({"model_state_dict": {"w": torch.tensor([1.0])}})
                put = http.put(
                    f"/api/remote/runs/{rid}/attempts/1/checkpoints/{epoch}",
                    params={"sha256": digest, "metrics": '{"val_loss": 1.0}'},
                    content=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                assert put.status_code == 204, put.text
            taken = wait_until(lambda: claim("worker-b"), timeout=30, what="B to take the run")
            assert taken["attempt"] == 2
            run = http.get(f"/api/runs/{rid}", headers={}).json()
            assert run["status"] == "running" and run["attempt"] == 2
    finally:
        server.stop()
