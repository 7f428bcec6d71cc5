"""Submit → running → first epoch → completed latency of queued runs through a real server with
one embedded worker, against the time to import torch in a fresh process (the cost a cold
worker child would pay). Prints `name: value unit` lines."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import Server

SPEC = {
    "dataset": {"name": "moons", "params": {"n_samples": 200}},
    "model": {"name": "mlp", "params": {"hidden_sizes": [8]}},
    "epochs": 2,
    "batch_size": 50,
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


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        server = Server(home, f"sqlite:///{home / 'trainboard.db'}", workers=1).start()
        try:
            http = httpx.Client(base_url=server.url, timeout=30)
            deadline = time.monotonic() + 60
            while http.get("/api/health").json()["workers"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(3)  # let the idle worker's child finish warming up, as it would in use
            running, first_epoch, done = [], [], []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                rid = http.post("/api/runs", json=SPEC).json()["id"]
                marks: dict[str, float] = {}
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
                running.append(marks["running"])
                first_epoch.append(marks["epoch"])
                done.append(marks["done"])
                time.sleep(3)  # the next warm child gets ready while the worker idles
        finally:
            server.stop()
    cold = cold_import_seconds()
    print(f"submit_to_running_median: {statistics.median(running) * 1000:.0f} ms")
    print(f"submit_to_first_epoch_median: {statistics.median(first_epoch) * 1000:.0f} ms")
    print(f"submit_to_completed_median: {statistics.median(done) * 1000:.0f} ms")
    print(f"cold_torch_process_start: {cold * 1000:.0f} ms")
    print(f"first_epoch_vs_cold_start_ratio: {statistics.median(first_epoch) / cold:.2f} x")


if __name__ == "__main__":
    main()
