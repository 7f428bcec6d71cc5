"""`trainboard.sweep(fn, space=...)`: a user's training function searched by Optuna in the
user's own process, each trial a tracked run on a real server; the pruner stops hopeless trials
through `trainboard.should_prune()`, a grid is covered once, a failing trial does not end the
search, and a bad space is refused naming the field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trainboard
from trainboard.sweeps.run import SweepProblem

from tests.e2e.test_tracking import Script
from tests.helpers import Server

pytestmark = pytest.mark.slow

# A real (small) training: linear regression by SGD or Adam, 8 epochs, the lr searched.
TRAIN = """
    import json, sys
    import torch
    import trainboard

    def train(config):
        if config.get("optimizer") == "broken":
            raise RuntimeError("this optimizer does not exist")
        torch.manual_seed(0)
        x = torch.randn(256, 4)
        y = x @ torch.tensor([1.0, -2.0, 3.0, 0.5])
        model = torch.nn.Linear(4, 1)
        optimizer = getattr(torch.optim, config["optimizer"])(model.parameters(), lr=config["lr"])
        for epoch in range(1, 9):
            for _ in range(10):
                optimizer.zero_grad()
                loss = ((model(x).squeeze(1) - y) ** 2).mean()
                loss.backward()
                optimizer.step()
            trainboard.log({"val_loss": loss.item()}, step=epoch)
            if trainboard.should_prune():
                return None
        return {"val_loss": loss.item()}

    result = trainboard.sweep(train, space=json.loads(sys.argv[1]), **json.loads(sys.argv[2]))
    print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("sweep-function-home")
    server = Server(home, f"sqlite:///{home / 'trainboard.db'}").start()
    yield server
    server.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def sweep(server: Server, folder: Path, space: dict, **options: object) -> dict:
    """Run TRAIN's sweep in a process of its own; its result as the script printed it."""
    script = Script(folder, TRAIN, server.url, json.dumps(space), json.dumps(options))
    assert script.wait(timeout=240) == 0, script.stderr()
    return json.loads(script.stdout().strip().splitlines()[-1])


def runs_tagged(http: httpx.Client, tag: str) -> dict[int, dict]:
    items = http.get("/api/runs", params={"tag": tag, "limit": 100}).json()["items"]
    return {r["id"]: r for r in items}


def test_a_function_sweep_tracks_every_trial_prunes_the_hopeless_and_finds_the_best(
    server: Server, http: httpx.Client, tmp_path: Path
) -> None:
    space = {
        "lr": {"type": "float", "low": 1e-6, "high": 0.3, "log": True},
        "optimizer": {"type": "categorical", "choices": ["SGD", "Adam", "broken"]},
    }
    result = sweep(server, tmp_path / "random", space, n_trials=10, sampler="random", name="fn")
    trials = result["trials"]
    assert len(trials) == 10 and [t["number"] for t in trials] == list(range(10))
    runs = runs_tagged(http, "sweep:fn")
    assert sorted(runs) == sorted(t["run_id"] for t in trials)
    states = {t["state"] for t in trials}
    assert states <= {"completed", "pruned", "failed"} and "pruned" in states
    for t in trials:
        run = runs[t["run_id"]]
        assert run["name"] == f"fn-{t['number']}" and run["status"] == t["state"]
        params = run["spec"]["params"]
        assert {k: params[k] for k in ("lr", "optimizer")} == t["params"]
        steps = http.get(f"/api/runs/{run['id']}/metrics", params={"keys": "val_loss"}).json()
        logged = steps["series"].get("val_loss", {"steps": [], "values": []})
        if t["params"]["optimizer"] == "broken":
            assert t["state"] == "failed" and "does not exist" in run["error"]
        elif t["state"] == "pruned":  # stopped early, at the value it was stopped at
            assert len(logged["steps"]) < 8 and t["value"] == logged["values"][-1]
        else:
            assert logged["steps"] == list(range(1, 9))
            assert t["value"] == pytest.approx(logged["values"][-1])
            assert run["summary"]["val_loss"] == pytest.approx(t["value"])
    completed = [t for t in trials if t["state"] == "completed"]
    best = min(completed, key=lambda t: t["value"])
    assert result["best_value"] == best["value"] and result["best_params"] == best["params"]
    assert result["best_run_id"] == best["run_id"]


def test_a_grid_is_covered_exactly_once(server: Server, http: httpx.Client, tmp_path: Path) -> None:
    space = {
        "lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01},
        "optimizer": {"type": "categorical", "choices": ["SGD", "Adam"]},
    }
    result = sweep(server, tmp_path / "grid", space, n_trials=50, sampler="grid", name="grid")
    points = sorted((t["params"]["lr"], t["params"]["optimizer"]) for t in result["trials"])
    assert points == sorted((lr, o) for lr in (0.01, 0.02, 0.03) for o in ("SGD", "Adam"))
    assert len(runs_tagged(http, "sweep:grid")) == 6


@pytest.mark.parametrize(
    ("space", "options", "names"),
    [
        ({"lr": {"type": "float", "low": 1, "high": 0.1}}, {}, "low must not be above high"),
        ({"lr": {"type": "float", "low": 0.1, "high": 1}}, {"sampler": "grid"}, "needs a step"),
        ({"lr": {"type": "uniform", "low": 0, "high": 1}}, {}, "lr"),
        ({"lr": {"type": "float", "low": 0.1, "high": 1}}, {"n_trials": 0}, "n_trials"),
    ],
)
def test_a_bad_space_is_refused_naming_the_problem(space: dict, options: dict, names: str) -> None:
    with pytest.raises(SweepProblem, match=names):
        trainboard.sweep(lambda config: 0.0, space=space, **options)
