"""A CSV's whole trip: upload → train on a worker → download the checkpoint → load_model →
predict on raw rows, reproducing the validation accuracy the run logged."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import trainboard
from trainboard.training.data import prepare_data
from trainboard.training.spec import DatasetSpec

from tests.helpers import wait_until

pytestmark = pytest.mark.slow


def make_csv(rows: int = 400, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["age", "income", "city", "plan", "churned"])
    for _ in range(rows):
        age = rng.integers(18, 80)
        income = rng.normal(50_000, 15_000)
        city = rng.choice(["paris", "lyon", "nice"])
        plan = rng.choice(["basic", "pro"])
        churned = "yes" if (age < 35) ^ (plan == "pro") ^ (rng.random() < 0.05) else "no"
        writer.writerow([age, "" if rng.random() < 0.02 else f"{income:.0f}", city, plan, churned])
    return out.getvalue()


def test_upload_train_load_and_predict_on_raw_rows(start_server, tmp_path: Path) -> None:
    server = start_server(workers=1)
    content = make_csv()
    http = httpx.Client(base_url=server.url, timeout=30)
    made = http.post(
        "/api/datasets", files={"file": ("churn.csv", content.encode())}, data={"target": "churned"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["task"] == "classification" and made.json()["columns"] == [
        "age",
        "income",
        "city",
        "plan",
    ]
    spec = {
        "dataset": {"name": "churn"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [32]}},
        "epochs": 25,
        "optimizer": {"lr": 0.01},
        "batch_size": 32,
    }
    rid = http.post("/api/runs", json=spec).json()["id"]
    run = wait_until(
        lambda: (
            (r := http.get(f"/api/runs/{rid}").json())["status"] in ("completed", "failed") and r
        ),
        timeout=120,
        what="the run",
    )
    assert run["status"] == "completed", run["error"]
    assert run["disk_bytes"] > 0
    path = tmp_path / "best.pt"
    path.write_bytes(http.get(f"/api/runs/{rid}/checkpoints/latest").content)
    model = trainboard.load_model(path)
    rows = list(csv.DictReader(io.StringIO(content)))
    # The validation rows of the run, found the way the loop found them (same seed and split).
    data = prepare_data(
        DatasetSpec(name="churn"), seed=42, uploads_dir=Path(server.home) / "uploads"
    )
    val_rows = [rows[i] for i in data.val_index]
    predicted = model.predict(val_rows)  # raw strings in, labels out
    accuracy = float(np.mean([p == r["churned"] for p, r in zip(predicted, val_rows, strict=True)]))
    assert set(predicted) <= {"yes", "no"}
    assert accuracy == pytest.approx(run["summary"]["val_accuracy"])
    assert accuracy > 0.8
    # An unseen category and a missing number are handled as at training time, not an error.
    odd = model.predict([{"age": "40", "income": "", "city": "berlin", "plan": "pro"}])
    assert odd[0] in ("yes", "no")
