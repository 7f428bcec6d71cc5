"""`trainboard launch slurm` on a real single-node Slurm cluster: a server with no workers of its
own, the launcher keeping at most --max-jobs jobs, each job a remote worker (`--server`) that
trains one run; and a job cancelled mid-run whose run a later job resumes from its checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from trainboard.launch.slurm import Jobs, elapsed_seconds, jobs_to_submit

from tests.helpers import Server, free_port, wait_until
from tests.slurm_cluster import SlurmCluster, slurm_cluster, unavailable_reason

pytestmark = pytest.mark.slow

JOB_NAME = "trainboard-worker"
FINAL = {"completed", "failed", "diverged", "cancelled"}
# The job states the launcher counts against --max-jobs (a COMPLETING job's worker has exited).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING"}
USER_TOKEN = "user-secret"
WORKER_TOKEN = "worker-secret"
# A short lease: the run of a job killed before its worker could hand it back is queued again
# within seconds.
SERVER_ENV = {
    "TRAINBOARD_LEASE_SECONDS": "5",
    "TRAINBOARD_TOKEN": USER_TOKEN,
    "TRAINBOARD_WORKER_TOKEN": WORKER_TOKEN,
}


def spec(name: str, epochs: int) -> dict[str, Any]:
    """About a second an epoch on one CPU core, a checkpoint after each."""
    return {
        "name": name,
        "dataset": {"name": "digits"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [256, 256], "dropout": 0.2}},
        "optimizer": {"name": "adamw", "lr": 0.001},
        "epochs": epochs,
        "batch_size": 4,
        "deterministic": True,
        "seed": 5,
    }


@pytest.fixture
def cluster() -> Iterator[SlurmCluster]:
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(reason)
        pytest.skip(reason)
    with slurm_cluster() as cluster:
        yield cluster


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "server"
    home.mkdir()
    server = Server(home, f"sqlite:///{home / 'trainboard.db'}", env_extra=SERVER_ENV).start()
    yield server
    server.stop()


@dataclass
class Launcher:
    """A real `trainboard launch slurm` process; its jobs' output lands in `folder`/slurm."""

    folder: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "launcher.log"

    @property
    def job_outputs(self) -> dict[str, str]:
        """Job id → what its worker printed."""
        return {
            path.stem.rpartition("-")[2]: path.read_text(errors="replace")
            for path in (self.folder / "slurm").glob(f"{JOB_NAME}-*.out")
        }

    def start(self, cluster: SlurmCluster, server: str, *args: str) -> Launcher:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
        # The user token reads the queue; the jobs get the worker token alone, and their scratch
        # folders land in this test's folder (TMPDIR).
        env |= cluster.env | {
            "TRAINBOARD_HOME": str(self.folder),
            "TRAINBOARD_TOKEN": USER_TOKEN,
            "TRAINBOARD_LAUNCH_POLL_SECONDS": "0.5",
            "TMPDIR": str(self.folder),
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "trainboard", "launch", "slurm", "--server", server]
        self.process = subprocess.Popen(
            [*command, "--token", WORKER_TOKEN, *args],
            env=env,
            cwd=self.folder,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM; its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def launcher(tmp_path: Path, cluster: SlurmCluster, server: Server) -> Iterator[Launcher]:
    """A launcher (started by the test), stopped at teardown, and the jobs it left cancelled
    while the server still answers their workers."""
    folder = tmp_path / "launcher"
    folder.mkdir()
    launcher = Launcher(folder)
    yield launcher
    launcher.stop()
    cluster.cancel_jobs()


class Api:
    def __init__(self, server: Server) -> None:
        headers = {"Authorization": f"Bearer {USER_TOKEN}"}
        self.http = httpx.Client(base_url=server.url, headers=headers, timeout=30)

    def submit(self, body: dict[str, Any]) -> int:
        response = self.http.post("/api/runs", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run(self, rid: int) -> dict[str, Any]:
        return self.http.get(f"/api/runs/{rid}").json()


def job_of_worker(launcher: Launcher, worker: str) -> str | None:
    """The Slurm job whose worker is `worker` (each worker prints its id when it starts)."""
    return next((job for job, out in launcher.job_outputs.items() if worker in out), None)


def test_launcher_keeps_max_jobs_and_each_run_trains_in_a_job_of_its_own(
    cluster: SlurmCluster, server: Server, launcher: Launcher
) -> None:
    api = Api(server)
    ids = [api.submit(spec(f"slurm-{i}", epochs=3)) for i in range(3)]
    launcher.start(cluster, server.url, "--max-jobs", "2")
    most = 0

    def all_final() -> bool:
        nonlocal most
        states = cluster.jobs(JOB_NAME).values()
        most = max(most, sum(state in ACTIVE for state in states))
        assert launcher.process is not None and launcher.process.poll() is None, launcher.output()
        return all(api.run(rid)["status"] in FINAL for rid in ids)

    wait_until(all_final, timeout=240, interval=0.3, what="the three runs to end")
    runs = [api.run(rid) for rid in ids]
    assert [r["status"] for r in runs] == ["completed"] * 3, runs
    assert 1 <= most <= 2
    # `--max-runs 1`: every run had a worker, so a job, of its own.
    workers = [r["worker"] for r in runs]
    assert len(set(workers)) == 3
    jobs = [job_of_worker(launcher, w) for w in workers]
    assert None not in jobs and len(set(jobs)) == 3, launcher.job_outputs
    assert launcher.output().count("submitted Slurm job") >= 3
    # Each job ends with its run: none is left holding a slot.
    wait_until(lambda: not cluster.jobs(JOB_NAME), timeout=60, what="the jobs to exit")
    assert launcher.stop() == 0
    assert "Traceback" not in launcher.output()


def test_a_cancelled_job_leaves_its_run_to_a_later_job_that_resumes_it(
    cluster: SlurmCluster, server: Server, launcher: Launcher
) -> None:
    epochs = 8
    api = Api(server)
    rid = api.submit(spec("slurm-cancelled", epochs=epochs))
    launcher.start(cluster, server.url, "--max-jobs", "2")
    first = wait_until(
        lambda: (r := api.run(rid))["epoch"] >= 2 and r["status"] == "running" and r,
        timeout=180,
        interval=0.2,
        what="two epochs of the run",
    )
    job = wait_until(lambda: job_of_worker(launcher, first["worker"]), what="the run's job")
    cluster.run("scancel", job)

    run = wait_until(
        lambda: (r := api.run(rid))["status"] in FINAL and r,
        timeout=240,
        interval=0.3,
        what="the run to end in a later job",
    )
    assert run["status"] == "completed" and run["attempt"] == 2, run
    assert run["worker"] != first["worker"]
    later = job_of_worker(launcher, run["worker"])
    assert later is not None and later != job
    series = api.http.get(f"/api/runs/{rid}/metrics").json()["series"]
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert series[key]["steps"] == list(range(1, epochs + 1)), key
    assert "resuming from epoch-000" in api.http.get(f"/api/runs/{rid}/logs").text
    assert launcher.stop() == 0


def test_an_unreachable_server_is_one_line_and_retried(tmp_path: Path) -> None:
    """No Slurm needed: the launcher reads the queue before it calls squeue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    env |= {"TRAINBOARD_LAUNCH_POLL_SECONDS": "0.2", "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "launcher.log"
    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "trainboard", "launch", "slurm", "--server", url],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    try:
        wait_until(lambda: log.read_text().count("retrying") >= 2, what="two retries")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
    lines = log.read_text().splitlines()
    assert all(line.startswith("trainboard launch slurm: cannot reach") for line in lines), lines


def test_a_job_for_each_queued_run_no_job_covers_up_to_max_jobs() -> None:
    assert jobs_to_submit(3, Jobs(), max_jobs=2) == 2
    assert jobs_to_submit(3, Jobs(pending=1, running=1), max_jobs=2) == 0
    assert jobs_to_submit(1, Jobs(pending=1), max_jobs=4) == 0  # the pending job will take it
    assert jobs_to_submit(1, Jobs(starting=1, running=1), max_jobs=4) == 0  # so will this one
    assert jobs_to_submit(2, Jobs(running=2), max_jobs=4) == 2  # these hold runs of their own
    assert jobs_to_submit(0, Jobs(), max_jobs=4) == 0
    assert [elapsed_seconds(t) for t in ("0:05", "1:02:03", "2-00:00:01")] == [5, 3723, 172801]
