"""Submit → running → first epoch → completed latency of queued runs through a real server, and
the metric points per second a run's recording keeps up with, for a worker on the database (the
embedded worker of `trainboard serve`) beside a remote worker on loopback (`trainboard worker
--server URL`, which reaches only the REST API), in the same run. Also the time to import
torch in a fresh process (what a cold worker child would pay). Prints `name: value unit`
lines and the remote/local ratios."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import Server, process_env

SPEC = {
    "dataset": {"name": "moons", "params": {"n_samples": 200}},
    "model": {"name": "mlp", "params": {"hidden_sizes": [8]}},
    "epochs": 2,
    "batch_size": 50,
}
# Every step logged: what the recording side carries, in points per second.
CHATTY = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "params": {"hidden_sizes": [32]}},
    "epochs": 2,
    "batch_size": 8,
    "log_every_steps": 1,
}
RUNS = 5


def cold_import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch; torch.optim.AdamW(torch.nn.Linear(2, 1).parameters()).step()",
        ],
        check=True,
    )
    return time.perf_counter() - start


@contextmanager
def serving(remote: bool) -> Iterator[httpx.Client]:
    """A server with one worker: embedded (on the database) or remote (on the REST API)."""
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        server = Server(home, f"sqlite:///{home / 'trainboard.db'}", workers=0 if remote else 1)
        server.start()
        worker = None
        if remote:
            scratch = home / "remote"
            scratch.mkdir()
            env = process_env(scratch, "")
            env.pop("TRAINBOARD_DATABASE_URL")
            worker = subprocess.Popen(
                [sys.executable, "-m", "trainboard", "worker", "--server", server.url],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            http = httpx.Client(base_url=server.url, timeout=30)
            deadline = time.monotonic() + 60
            while http.get("/api/health").json()["workers"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(3)  # let the idle worker's child finish warming up, as it would in use
            yield http
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait()
            server.stop()


def timeline(http: httpx.Client, spec: dict) -> dict[str, float]:
    """Seconds from submit to running, first epoch and the end of one run."""
    t0 = time.perf_counter()
    rid = http.post("/api/runs", json=spec).json()["id"]
    marks: dict[str, float] = {"id": rid}
    while "done" not in marks:
        run = http.get(f"/api/runs/{rid}").json()
        now = time.perf_counter() - t0
        if run["status"] != "queued":
            marks.setdefault("running", now)
        if run["epoch"] >= 1:
            marks.setdefault("epoch", now)
        if run["status"] in ("completed", "failed"):
            marks["done"] = now
        time.sleep(0.01)
    return marks


def measure(remote: bool) -> dict[str, float]:
    with serving(remote) as http:
        runs = []
        for _ in range(RUNS):
            runs.append(timeline(http, SPEC))
            time.sleep(3)  # the next warm child gets ready while the worker idles
        chatty = timeline(http, CHATTY)
        series = http.get(f"/api/runs/{int(chatty['id'])}/metrics").json()["series"]
        points = sum(len(s["steps"]) for s in series.values())
    return {
        "running": statistics.median(r["running"] for r in runs),
        "epoch": statistics.median(r["epoch"] for r in runs),
        "done": statistics.median(r["done"] for r in runs),
        "points_per_second": points / (chatty["done"] - chatty["running"]),
    }


def main() -> None:
    figures = {"local": measure(remote=False), "remote": measure(remote=True)}
    for where, f in figures.items():
        print(f"{where}_submit_to_running_median: {f['running'] * 1000:.0f} ms")
        print(f"{where}_submit_to_first_epoch_median: {f['epoch'] * 1000:.0f} ms")
        print(f"{where}_submit_to_completed_median: {f['done'] * 1000:.0f} ms")
        print(f"{where}_metric_points_per_second: {f['points_per_second']:.0f} points/s")
    local, remote = figures["local"], figures["remote"]
    print(f"remote_vs_local_first_epoch: {remote['epoch'] / local['epoch']:.2f} x")
    print(f"remote_vs_local_completed: {remote['done'] / local['done']:.2f} x")
    print(
        f"remote_vs_local_points_per_second: "
        f"{remote['points_per_second'] / local['points_per_second']:.2f} x"
    )
    cold = cold_import_seconds()
    print(f"cold_torch_process_start: {cold * 1000:.0f} ms")
    print(f"local_first_epoch_vs_cold_start_ratio: {local['epoch'] / cold:.2f} x")


if __name__ == "__main__":
    os.environ.pop("TRAINBOARD_DATABASE_URL", None)
    main()
