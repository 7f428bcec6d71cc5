"""Sweeps through a real server and real workers, on SQLite and PostgreSQL: trials are ordinary
runs steered by an Optuna study in the same database, never more than `parallelism` at once;
the median pruner stops hopeless trials; a grid is covered exactly once; a bad space is refused;
a sweep survives its server and worker being killed; cancel stops it."""

from __future__ import annotations

import itertools
import signal
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.slow

BASE = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "params": {"hidden_sizes": [32]}},
    "epochs": 3,
    "checkpoint": {"every_epochs": 1, "keep_last": 1, "keep_best": 0},
}
FINAL_TRIAL = {"completed", "pruned", "failed", "diverged", "cancelled"}
# A killed worker's trials go back to the queue once their lease runs out.
LEASE = {"TRAINBOARD_LEASE_SECONDS": "5"}


def sweep_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "lr-and-optimizer",
        "base": BASE,
        "space": {
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "optimizer.name": {"type": "categorical", "choices": ["sgd", "adamw"]},
        },
        "n_trials": 12,
        "parallelism": 2,
        "sampler": "random",
        "pruner": "none",
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    return body | overrides


def finished(http: httpx.Client, sweep_id: int, timeout: float = 240) -> dict[str, Any]:
    return wait_until(
        lambda: (s := http.get(f"/api/sweeps/{sweep_id}").json())["status"] != "running" and s,
        timeout=timeout,
        what=f"sweep {sweep_id} to finish",
    )


def at_once(runs: list[dict[str, Any]]) -> int:
    """The most trials queued or running at the same moment, from their own timestamps: at each
    trial's creation, the trials created before it that had not finished yet, plus itself."""

    def time(value: str | None) -> datetime:
        return datetime.fromisoformat(value) if value else datetime.max

    most = 0
    for run in runs:
        created = time(run["created_at"])
        open_ = [r for r in runs if time(r["created_at"]) <= created < time(r["finished_at"])]
        most = max(most, len(open_))
    return most


def test_a_random_sweep_runs_its_trials_two_at_a_time_and_knows_its_best(start_server) -> None:
    server = start_server(workers=2)
    http = httpx.Client(base_url=server.url, timeout=60)
    sweep = http.post("/api/sweeps", json=sweep_body())
    assert sweep.status_code == 201, sweep.text
    done = finished(http, sweep.json()["id"])

    assert done["status"] == "completed"
    assert len(done["trials"]) == len(done["runs"]) == 12
    assert {t["status"] for t in done["trials"]} <= {"completed", "pruned"}
    assert sorted(t["number"] for t in done["trials"]) == list(range(12))
    assert all(r["sweep_id"] == done["id"] for r in done["runs"])
    assert at_once(done["runs"]) <= 2
    best = min((t for t in done["trials"] if t["value"] is not None), key=lambda t: t["value"])
    assert (done["best_run_id"], done["best_value"]) == (best["run_id"], best["value"])
    assert done["best_params"] == best["params"]
    # Each trial trained the params it was given, and its value is its best val_loss.
    run = http.get(f"/api/runs/{best['run_id']}").json()
    assert run["spec"]["optimizer"]["lr"] == best["params"]["optimizer.lr"]
    assert run["spec"]["optimizer"]["name"] == best["params"]["optimizer.name"]
    losses = http.get(f"/api/runs/{best['run_id']}/metrics", params={"keys": "val_loss"}).json()
    assert best["value"] == min(losses["series"]["val_loss"]["values"])
    importance = http.get(f"/api/sweeps/{done['id']}/importance").json()["importances"]
    assert set(importance) == {"optimizer.lr", "optimizer.name"}
    # Every trial's curve in one read, each the same as its run's own series.
    curves = http.get(f"/api/sweeps/{done['id']}/curves", params={"key": "val_loss"}).json()
    assert set(curves["series"]) == {str(t["run_id"]) for t in done["trials"]}
    assert curves["series"][str(best["run_id"])] == losses["series"]["val_loss"]
    some = [t["run_id"] for t in done["trials"][:2]]
    two = http.get(
        f"/api/sweeps/{done['id']}/curves",
        params={"key": "val_loss", "runs": f"{some[0]},{some[1]},999999"},
    ).json()
    assert set(two["series"]) == {str(i) for i in some}, "only the sweep's own trials asked for"
    bad = http.get(f"/api/sweeps/{done['id']}/curves", params={"key": "val_loss", "runs": "1,x"})
    assert bad.status_code == 422 and "runs" in bad.text
    listed = http.get("/api/sweeps").json()
    assert listed["total"] >= 1 and listed["items"][0]["id"] == done["id"]


def test_pruning_a_grid_a_bad_space_and_cancel(start_server) -> None:
    server = start_server(workers=1)
    http = httpx.Client(base_url=server.url, timeout=60)

    refused = http.post(
        "/api/sweeps",
        json=sweep_body(space={"optimizer.name": {"type": "categorical", "choices": ["sgd", "x"]}}),
    )
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "space", "optimizer.name"]
    too_high = http.post(
        "/api/sweeps",
        json=sweep_body(space={"optimizer.lr": {"type": "float", "low": 0.1, "high": 50.0}}),
    )
    assert too_high.status_code == 422 and "optimizer.lr" in too_high.text

    # Absurdly small learning rates are hopeless: the median pruner stops them early.
    pruning = http.post(
        "/api/sweeps",
        json=sweep_body(
            # Epochs long enough (~0.2 s) for "stopped within an epoch" to mean something.
            base={**BASE, "epochs": 6, "model": {"name": "mlp"}, "batch_size": 16},
            space={
                "optimizer.lr": {
                    "type": "categorical",
                    "choices": [0.003, 0.01, 0.005, 1e-9, 1e-8, 2e-9, 3e-9],
                }
            },
            sampler="grid",
            n_trials=7,
            parallelism=1,
            pruner="median",
            # The grid's order for this seed: 0.005, 0.003, 3e-9 (the three trials the median is
            # taken over), then 2e-9, 0.01, 1e-8, 1e-9.
            seed=8,
        ),
    ).json()
    done = finished(http, pruning["id"])
    pruned = [t for t in done["trials"] if t["status"] == "pruned"]
    # Every hopeless trial after the three the median is taken over was stopped.
    hopeless = {2e-9, 1e-8, 1e-9}
    assert hopeless <= {t["params"]["optimizer.lr"] for t in pruned}, done["trials"]
    assert done["best_params"]["optimizer.lr"] > 1e-3
    for trial in pruned:
        assert trial["pruned_against"] is not None and trial["value"] >= trial["pruned_against"]
        run = http.get(f"/api/runs/{trial['run_id']}").json()
        # Stopped within an epoch of the pruner's answer, well before its 6 epochs.
        assert trial["pruned_epoch"] <= run["epoch"] <= trial["pruned_epoch"] + 1 < 6
        assert f"Pruned at epoch {trial['pruned_epoch']}" in run["error"]

    # A grid is covered exactly once, even when n_trials asks for more.
    grid = http.post(
        "/api/sweeps",
        json=sweep_body(
            base={**BASE, "epochs": 1},
            space={
                "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam", "adamw"]},
                "batch_size": {"type": "int", "low": 32, "high": 64, "step": 32},
            },
            sampler="grid",
            n_trials=50,
        ),
    ).json()
    assert grid["n_trials"] == 6
    done = finished(http, grid["id"])
    seen = sorted(
        (t["params"]["optimizer.name"], t["params"]["batch_size"]) for t in done["trials"]
    )
    assert seen == sorted(itertools.product(["sgd", "adam", "adamw"], [32, 64]))

    # Cancel: queued trials at once, the running one within a step.
    slow = http.post(
        "/api/sweeps", json=sweep_body(base={**BASE, "epochs": 200}, n_trials=6, parallelism=2)
    ).json()
    wait_until(
        lambda: any(
            r["status"] == "running" for r in http.get(f"/api/sweeps/{slow['id']}").json()["runs"]
        ),
        timeout=60,
        what="a trial to start",
    )
    cancelled = http.post(f"/api/sweeps/{slow['id']}/cancel", json={})
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert all(t["status"] != "queued" for t in cancelled.json()["trials"])
    done = wait_until(
        lambda: (
            (s := http.get(f"/api/sweeps/{slow['id']}").json())
            and all(t["status"] in FINAL_TRIAL for t in s["trials"])
            and s
        ),
        timeout=60,
        what="the running trial to stop",
    )
    assert {t["status"] for t in done["trials"]} == {"cancelled"}
    assert len(done["trials"]) == 2  # no trial was queued after the cancel
    assert http.post(f"/api/sweeps/{slow['id']}/cancel", json={}).status_code == 409


def test_a_sweep_survives_its_server_and_worker_being_killed(start_server, start_worker) -> None:
    server = start_server(workers=0)
    worker = start_worker(**LEASE)
    http = httpx.Client(base_url=server.url, timeout=60)
    sweep = http.post(
        "/api/sweeps", json=sweep_body(base={**BASE, "epochs": 4}, n_trials=6, parallelism=2)
    ).json()
    wait_until(
        lambda: (
            sum(
                t["status"] in FINAL_TRIAL
                for t in http.get(f"/api/sweeps/{sweep['id']}").json()["trials"]
            )
            >= 2
        ),
        timeout=120,
        what="two trials to end",
    )
    worker.stop(signal.SIGKILL)
    assert server.process is not None
    server.process.kill()
    server.process.wait()

    server = start_server(workers=0)
    start_worker(**LEASE)  # the killed trials wait out their lease, then go on
    http = httpx.Client(base_url=server.url, timeout=60)
    done = finished(http, sweep["id"], timeout=480)
    assert done["status"] == "completed"
    assert len(done["trials"]) == 6
    assert sorted(t["number"] for t in done["trials"]) == list(range(6))
    assert {t["status"] for t in done["trials"]} <= {"completed", "pruned"}
