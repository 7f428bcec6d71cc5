"""The guide's checks through a real server and worker, on SQLite and PostgreSQL: the LR range
test and the one-batch preflight as queued runs, a diverged run's diagnosis (the model's fault,
and the data's), per-layer gradient norms in the metrics, and bad check settings refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.slow

FINAL = {"completed", "failed", "diverged", "cancelled"}
DIGITS_MLP = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "epochs": 1}
DIVERGING = {
    "dataset": {"name": "diabetes"},
    "model": {"name": "mlp"},
    "optimizer": {"name": "sgd", "lr": 10.0},
    "grad_clip_norm": None,
    "epochs": 3,
    "log_every_steps": 1,
}


def finished(http: httpx.Client, run_id: int) -> dict[str, Any]:
    return wait_until(
        lambda: (run := http.get(f"/api/runs/{run_id}").json())["status"] in FINAL and run,
        timeout=120,
        what=f"run {run_id} to finish",
    )


def huge_value_csv(rows: int = 120) -> bytes:
    """A numeric column with one value too large to standardize in float32: every input of
    that column becomes infinite, though each cell is a finite number the upload accepts."""
    lines = ["x,big,y"]
    for i in range(rows):
        big = "1e308" if i == 0 else str(i % 7)
        lines.append(f"{i / rows:.3f},{big},{(i % 5) * 0.5:.2f}")
    return ("\n".join(lines) + "\n").encode()


def test_checks_and_diagnoses_through_the_queue(start_server) -> None:
    server = start_server(workers=1)
    http = httpx.Client(base_url=server.url, timeout=30)

    refused = http.post(
        "/api/lr-find", json={**DIGITS_MLP, "lr_find": {"start_lr": 1, "end_lr": 0.1}}
    )
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "lr_find"]
    unknown = http.post("/api/preflight", json={**DIGITS_MLP, "model": {"name": "nope"}})
    assert unknown.status_code == 422 and "unknown model" in unknown.text
    made = http.post(
        "/api/datasets",
        files={"file": ("huge.csv", huge_value_csv())},
        data={"target": "y"},
    )
    assert made.status_code == 201, made.text

    lr_find = http.post("/api/lr-find", json={**DIGITS_MLP, "lr_find": {"steps": 60}})
    assert lr_find.status_code == 201 and lr_find.json()["kind"] == "lr_find"
    passing = http.post("/api/preflight", json=DIGITS_MLP).json()
    flat = http.post("/api/preflight", json={**DIGITS_MLP, "optimizer": {"lr": 1e-7}}).json()
    absurd = {"optimizer": {"name": "sgd", "lr": 10.0}, "grad_clip_norm": None}
    rising = http.post("/api/preflight", json={**DIGITS_MLP, **absurd}).json()
    diverging = http.post("/api/runs", json=DIVERGING).json()
    bad_data = http.post(
        "/api/runs",
        json={"dataset": {"name": "huge"}, "model": {"name": "mlp"}, "epochs": 2},
    ).json()

    found = finished(http, lr_find.json()["id"])
    assert found["status"] == "completed" and found["error"] is None
    curve = found["summary"]["lr_find"]
    assert curve["lrs"] == sorted(curve["lrs"]) and len(curve["lrs"]) == len(curve["losses"])
    assert curve["lrs"][0] <= found["summary"]["suggested_lr"] <= curve["lrs"][-1]
    points = http.get(f"/api/runs/{found['id']}/metrics", params={"keys": "lr_find/loss"})
    assert len(points.json()["series"]["lr_find/loss"]["steps"]) == len(curve["lrs"])
    # A run at the suggested lr trains as well as one at the default lr, in the same epochs.
    three = {**DIGITS_MLP, "epochs": 3}
    suggested = http.post(
        "/api/runs", json={**three, "optimizer": {"lr": found["summary"]["suggested_lr"]}}
    ).json()
    default = http.post("/api/runs", json=three).json()
    accuracy = {
        name: finished(http, run["id"])["summary"]["val_accuracy"]
        for name, run in (("suggested", suggested), ("default", default))
    }
    assert accuracy["suggested"] >= accuracy["default"], accuracy
    # The check's settings are kept; its spec is the one sent, ready for "Use this lr".
    assert found["options"]["steps"] == 60 and found["spec"]["priority"] == 0

    verdict = finished(http, passing["id"])["summary"]["preflight"]
    assert verdict["passed"] is True and verdict["end_loss"] < 0.1 * verdict["start_loss"]
    verdict = finished(http, flat["id"])["summary"]["preflight"]
    assert verdict["passed"] is False and "too low" in verdict["message"]
    verdict = finished(http, rising["id"])["summary"]["preflight"]
    assert verdict["passed"] is False and "too high" in verdict["message"]

    run = finished(http, diverging["id"])
    assert run["status"] == "diverged"
    diagnosis = run["diagnosis"]
    assert diagnosis["what"] in {"activation", "loss", "gradient", "weights"}
    series = http.get(f"/api/runs/{run['id']}/metrics").json()["series"]
    layers = {k.removeprefix("layer_grad_norm/") for k in series if k.startswith("layer_grad")}
    assert diagnosis["where"] in layers  # every trainable parameter has a row
    # Logged every step: the points stop just before the step that went non-finite.
    assert diagnosis["step"] == series["step/grad_norm"]["steps"][-1] + 1
    recorded = series["step/grad_norm"]["values"]
    assert diagnosis["recent_grad_norms"][:-1] == pytest.approx(recorded)
    assert any(
        "Clip gradients" in s or "lower learning rate" in s for s in diagnosis["suggestions"]
    )

    run = finished(http, bad_data["id"])
    assert run["status"] == "diverged"
    assert run["diagnosis"]["suggestions"][0].startswith("Check the data")
    assert run["diagnosis"]["what"] == "activation"
    # A check is not resumed: a new one is started instead.
    again = http.post(f"/api/runs/{passing['id']}/resume", json={})
    assert again.status_code == 409 and "start a new one" in again.text
