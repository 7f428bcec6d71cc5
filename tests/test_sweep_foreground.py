"""`trainboard sweep SWEEP.json` and `trainboard.sweep(...)`: a sweep run in one process with no
server, its trials and study in the database like a server's sweeps; bad bodies refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import col, select
from trainboard.db import make_engine, session_scope
from trainboard.models import Run, Sweep

pytestmark = pytest.mark.slow

BODY = {
    "name": "here",
    "base": {
        "dataset": {"name": "digits"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [16]}},
        "epochs": 2,
    },
    "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
    "n_trials": 3,
    "sampler": "random",
}


def test_a_sweep_on_the_command_line_runs_its_trials_here(tmp_path: Path) -> None:
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps(BODY))
    done = subprocess.run(
        [sys.executable, "-m", "trainboard", "sweep", str(spec), "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    engine = make_engine(f"sqlite:///{tmp_path / 'trainboard.db'}")
    with session_scope(engine) as session:
        sweep = session.exec(select(Sweep)).one()
        trials = session.exec(select(Run).where(col(Run.sweep_id) == sweep.id)).all()
        assert sweep.status == "completed" and len(trials) == 3
        assert {t.status for t in trials} <= {"completed", "pruned"}
        best = min(
            (t for t in trials if t.status == "completed"),
            key=lambda t: t.summary["best_val_loss"],
        )
        assert sweep.best_run_id == best.id
        assert sweep.best_params == best.options["params"]
    engine.dispose()
    assert f"best run {best.id}" in done.stdout


def test_trainboard_sweep_from_python_returns_the_sweep_and_refuses_a_bad_space(
    tmp_path: Path,
) -> None:
    script = (
        "import json, sys, trainboard\n"
        "body = json.loads(sys.argv[1])\n"
        "try:\n"
        "    trainboard.sweep({**body, 'space': {'optimizer.name': "
        "{'type': 'categorical', 'choices': ['sgd', 'nope']}}}, home=sys.argv[2])\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
        "result = trainboard.sweep({**body, 'n_trials': 2}, home=sys.argv[2])\n"
        "print(json.dumps(result))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(BODY), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert any(
        line.startswith("refused:") and "space.optimizer.name" in line and "nope" in line
        for line in lines
    )
    result = json.loads(lines[-1])
    assert result["status"] == "completed" and len(result["trials"]) == 2
    assert result["best_params"]["optimizer.lr"] in [
        t["params"]["optimizer.lr"] for t in result["trials"]
    ]
