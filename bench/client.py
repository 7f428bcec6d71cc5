"""The tracking client's cost to a training script, against a real server on 127.0.0.1.

(a) time inside `run.log` for a dict of 5 scalars (median, p99), beside one training step of
    the tutorial's digits MLP (64-128-10, batch 64, SGD) measured in the same loop
(b) end-to-end points/s: 200,000 points logged as fast as possible, until `finish` returns
    with all of them on the server; beside POST /metrics directly in batches of 5,000
(c) `init` to the first point visible through GET /api/runs/{id}/metrics
Prints `name: value unit` lines.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))
from trainboard.tracking.run import Run  # noqa: E402

from tests.helpers import Server  # noqa: E402

STEPS = 3000


def log_beside_training(url: str) -> None:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = Run("bench-log", {"lr": 0.1}, url=url, capture_console=False)
    log_times, step_times = [], []
    for step in range(STEPS):
        index = torch.randint(0, len(x), (64,))
        started = time.perf_counter()
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
        value = loss.item()
        trained = time.perf_counter()
        run.log({"loss": value, "lr": 0.1, "epoch": step / 30, "acc": 0.5, "grad": 1.0})
        logged = time.perf_counter()
        step_times.append(trained - started)
        log_times.append(logged - trained)
    run.finish()
    log_times.sort()
    median_log, median_step = statistics.median(log_times), statistics.median(step_times)
    print(f"log_5_scalars_median: {median_log * 1e6:.1f} us")
    print(f"log_5_scalars_p99: {log_times[int(0.99 * len(log_times))] * 1e6:.1f} us")
    print(f"digits_mlp_step_median: {median_step * 1e6:.1f} us")
    print(f"log_share_of_step: {100 * median_log / median_step:.2f} %")


def end_to_end(url: str, http: httpx.Client) -> None:
    calls = 40_000  # x 5 keys
    run = Run("bench-e2e", url=url, capture_console=False, record_system=False)
    started = time.perf_counter()
    for step in range(calls):
        run.log({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": float(step)}, step=step)
    run.finish()
    seconds = time.perf_counter() - started
    series = http.get(f"/api/runs/{run.id}/metrics", params={"keys": "e", "max_points": 10})
    assert series.status_code == 200
    print(f"client_end_to_end: {calls * 5 / seconds:,.0f} points/s")

    rid = http.post("/api/runs", json={"kind": "external", "name": "bench-direct"}).json()["id"]
    total, batch = 200_000, 5000
    started = time.perf_counter()
    for start in range(0, total, batch):
        points = [{"key": "k", "step": i, "value": 1.0} for i in range(start, start + batch)]
        http.post(f"/api/runs/{rid}/metrics", json={"points": points}).raise_for_status()
    print(f"direct_post_metrics: {total / (time.perf_counter() - started):,.0f} points/s")


def first_point(url: str, http: httpx.Client) -> None:
    started = time.perf_counter()
    run = Run("bench-first", url=url, capture_console=False, record_system=False)
    run.log({"loss": 1.0}, step=0)
    rid = run.id
    while not http.get(f"/api/runs/{rid}/metrics", params={"keys": "loss"}).json()["series"]:
        time.sleep(0.005)
    print(f"init_to_first_point_visible: {(time.perf_counter() - started) * 1000:.0f} ms")
    run.finish()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        server = Server(home, f"sqlite:///{home / 'trainboard.db'}").start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                first_point(server.url, http)
                log_beside_training(server.url)
                end_to_end(server.url, http)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
