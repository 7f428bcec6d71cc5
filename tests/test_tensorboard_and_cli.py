"""`trainboard train`: the same database rows, TensorBoard files and checkpoints as a queued run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trainboard.db import make_engine, session_scope
from trainboard.store.checkpoints import list_checkpoints
from trainboard.store.metrics import read_series
from trainboard.store.runs import list_runs


def trainboard(
    *args: str, home: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "TRAINBOARD_HOME": str(home), "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "trainboard", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        input=stdin,
    )


@pytest.mark.slow
def test_train_writes_metrics_tensorboard_and_checkpoints(tmp_path: Path) -> None:
    spec = {
        "name": "cli",
        "dataset": {"name": "digits"},
        "model": {"name": "mlp"},
        "epochs": 3,
        "log_every_steps": 5,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = trainboard(
        "train", str(tmp_path / "spec.json"), "--home", str(tmp_path / "data"), home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'trainboard.db'}")
    with session_scope(engine) as session:
        [run], _ = list_runs(session)
        assert (run.status, run.epoch, run.name) == ("completed", 3, "cli")
        series = read_series(
            session,
            run_id=run.id,
            keys=["train_loss", "val_loss", "step/train_loss"],
            max_points=1000,
        )
        checkpoints = list_checkpoints(session, run_id=run.id)
    assert [c.name for c in checkpoints] == ["epoch-0002", "epoch-0003"]
    tb_dir = tmp_path / "data" / "runs" / str(run.id) / "tensorboard"
    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    for key in ("train_loss", "val_loss", "step/train_loss"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == series[key].steps
        assert [s.value for s in scalars] == pytest.approx(series[key].values, rel=1e-6)
    assert {"lr", "grad_norm", "val_accuracy", "step/lr", "step/grad_norm"} <= set(tags["scalars"])
    assert any(t.startswith("weights/") for t in tags["histograms"])
    assert any(t.startswith("grads/") for t in tags["histograms"])
    assert "hparam/best_val_loss" in tags["scalars"]
    assert events.PluginTagToContent("hparams")  # the HParams dashboard's session data


def test_train_rejects_a_bad_spec_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(
        json.dumps(
            {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "optimizer": {"lr": -1}}
        )
    )
    result = trainboard("train", str(tmp_path / "spec.json"), home=tmp_path)
    assert result.returncode == 2
    assert "optimizer.lr" in result.stderr and "greater than 0" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "broken.json").write_text("{not json")
    result = trainboard("train", str(tmp_path / "broken.json"), home=tmp_path)
    assert (
        result.returncode != 0
        and "not valid JSON" in result.stderr
        and "Traceback" not in result.stderr
    )
    result = trainboard("train", str(tmp_path / "missing.json"), home=tmp_path)
    assert result.returncode != 0 and "cannot read" in result.stderr
