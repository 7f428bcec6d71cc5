"""Predictions and exports of a digits MLP, against the same model called in-process.

(a) baseline: `trainboard.load_model(...).predict` in this process, 1 row and 256 rows
(b) POST /api/runs/{id}/predict through a real uvicorn server, 1 row and 256 rows
    (keep-alive client; the server's model cache is warm after the first request), beside
    GET /api/runs/{id}, the floor of any REST call that reads the database
(c) each export format: the first request (rebuild, export, verify) and a cached one
Prints `name: value unit` lines; latencies are p50 / p95 over many calls.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))
import trainboard  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from tests.helpers import Server, process_env  # noqa: E402

SPEC = {
    "name": "bench-digits-mlp",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "params": {"hidden_sizes": [128, 64]}},
    "epochs": 3,
}


def percentiles(call: Callable[[], object], times: int) -> tuple[float, float]:
    """p50 and p95 of `call` in milliseconds, after three warm-up calls."""
    for _ in range(3):
        call()
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(samples, n=20)
    return statistics.median(samples), cuts[18]


def report(name: str, p50: float, p95: float) -> None:
    print(f"{name}_p50: {p50:.2f} ms")
    print(f"{name}_p95: {p95:.2f} ms")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    spec = home / "spec.json"
    spec.write_text(json.dumps(SPEC))
    database = f"sqlite:///{home / 'trainboard.db'}"
    subprocess.run(
        [sys.executable, "-m", "trainboard", "train", str(spec)],
        env=process_env(home, database),
        check=True,
        capture_output=True,
    )
    rows = load_digits().data
    one, many = rows[:1].tolist(), rows[:256].tolist()
    checkpoint = sorted((home / "runs" / "1" / "checkpoints").glob("epoch-*.pt"))[-1]
    model = trainboard.load_model(checkpoint)
    report("in_process_predict_1_row", *percentiles(lambda: model.predict(rows[:1]), 500))
    report("in_process_predict_256_rows", *percentiles(lambda: model.predict(rows[:256]), 200))

    server = Server(home, database).start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            url = "/api/runs/1/predict"

            def predict(inputs: list) -> None:
                response = http.post(url, json={"inputs": inputs, "checkpoint": "latest"})
                response.raise_for_status()

            # The floor of a REST call that reads the database: the run itself.
            report("rest_get_run", *percentiles(lambda: http.get("/api/runs/1"), 500))
            report("rest_predict_1_row", *percentiles(lambda: predict(one), 500))
            report("rest_predict_256_rows", *percentiles(lambda: predict(many), 200))
            for fmt in ("onnx", "torchscript", "pt2"):
                export = f"/api/runs/1/checkpoints/latest/export?format={fmt}"
                start = time.perf_counter()
                http.get(export).raise_for_status()
                print(f"export_{fmt}_first: {time.perf_counter() - start:.2f} s")
                p50, _ = percentiles(lambda export=export: http.get(export).raise_for_status(), 20)
                print(f"export_{fmt}_cached_p50: {p50:.1f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
