"""Checkpoint files: retention, atomic writes, weights_only loading, the tutorial's load lines."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import trainboard
from trainboard.training.checkpoint import CheckpointManager, atomic_write, load_checkpoint
from trainboard.training.data import prepare_data
from trainboard.training.loop import train
from trainboard.training.models import build_model
from trainboard.training.optim import build_optimizer
from trainboard.training.spec import CheckpointSpec, RunSpec


def test_retention_keeps_the_last_n_and_the_best_by_the_monitored_metric(tmp_path: Path) -> None:
    manager = CheckpointManager(
        tmp_path, CheckpointSpec(keep_last=2, keep_best=1, monitor="val_loss", mode="min")
    )
    for epoch, val_loss in enumerate([0.5, 0.1, 0.4, float("nan"), 0.7], start=1):
        kept = manager.save(
            {"model_state_dict": {}, "epoch": epoch}, epoch=epoch, metrics={"val_loss": val_loss}
        )
    assert [e.name for e in kept] == ["epoch-0002", "epoch-0004", "epoch-0005"]
    assert [e.is_best for e in kept] == [True, False, False]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [
        "epoch-0002.pt",
        "epoch-0004.pt",
        "epoch-0005.pt",
    ]
    # A new manager over the same folder (a resumed attempt) knows what is there.
    again = CheckpointManager(tmp_path, CheckpointSpec(keep_last=2, keep_best=1))
    assert [e.name for e in again.entries] == ["epoch-0002", "epoch-0004", "epoch-0005"]
    assert again.latest_path() == tmp_path / "epoch-0005.pt"


def test_mode_max_keeps_the_highest_and_nan_is_never_best(tmp_path: Path) -> None:
    manager = CheckpointManager(
        tmp_path, CheckpointSpec(keep_last=1, keep_best=1, monitor="val_accuracy", mode="max")
    )
    manager.save({}, epoch=1, metrics={"val_accuracy": 0.8})
    manager.save({}, epoch=2, metrics={"val_accuracy": 0.9})
    kept = manager.save({}, epoch=3, metrics={"val_accuracy": float("nan")})
    assert {e.name: e.is_best for e in kept} == {"epoch-0002": True, "epoch-0003": False}


def test_saving_an_earlier_epoch_again_drops_the_later_files(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, CheckpointSpec(keep_last=5, keep_best=0))
    for epoch in (1, 2, 3, 2):
        kept = manager.save({"epoch": epoch}, epoch=epoch, metrics={})
    assert [e.name for e in kept] == ["epoch-0001", "epoch-0002"]
    assert sorted(p.stem for p in tmp_path.glob("*.pt")) == ["epoch-0001", "epoch-0002"]


def test_atomic_write_leaves_the_old_file_whole_when_a_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "epoch-0001.pt"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"old complete file"))

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half of a new fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_bytes() == b"old complete file"
    assert os.listdir(tmp_path) == ["epoch-0001.pt"]  # no temp file left behind


def test_a_checkpoint_loads_with_weights_only_and_the_tutorial_lines(tmp_path: Path) -> None:
    spec = RunSpec.model_validate(
        {"dataset": {"name": "iris"}, "model": {"name": "mlp"}, "epochs": 2}
    )
    train(spec, run_dir=tmp_path)
    path = tmp_path / "checkpoints" / "epoch-0002.pt"
    ckpt = torch.load(path, weights_only=True)
    for key in (
        "epoch",
        "model_state_dict",
        "optimizer_state_dict",
        "loss",
        "scheduler_state_dict",
        "spec",
        "metrics",
        "rng",
        "preprocessing",
    ):
        assert key in ckpt
    assert ckpt["epoch"] == 2 and isinstance(ckpt["loss"], float)
    model = build_model(spec.model, prepare_data(spec.dataset, seed=spec.seed).info)
    optimizer = build_optimizer(model, spec.optimizer)
    model.load_state_dict(ckpt["model_state_dict"])
    optimizer.load_state_dict(ckpt["optimizer_state_dict"])
    assert optimizer.state  # Adam moments came back


def test_the_tutorial_line_loads_a_checkpoint_into_load_models_model(tmp_path: Path) -> None:
    spec = RunSpec.model_validate(
        {"dataset": {"name": "iris"}, "model": {"name": "mlp"}, "epochs": 1}
    )
    train(spec, run_dir=tmp_path)
    path = tmp_path / "checkpoints" / "epoch-0001.pt"
    weights = torch.load(path, weights_only=True)["model_state_dict"]
    from sklearn.datasets import load_iris

    x, _ = load_iris(return_X_y=True)
    expected = trainboard.load_model(path).predict_proba(x)
    model = trainboard.load_model(path)
    assert model.state_dict().keys() == weights.keys()
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    model.load_state_dict(weights)  # the tutorial's line, as it is
    assert model.predict_proba(x) == pytest.approx(expected, abs=1e-6)


class Payload:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_a_pickled_object_in_a_checkpoint_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        pickle.dump({"model_state_dict": Payload()}, handle)
    with pytest.raises(ValueError, match="not a readable trainboard checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="not a readable trainboard checkpoint"):
        trainboard.load_model(path)
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        load_checkpoint(tmp_path / "garbage.pt")


def test_load_model_says_why_a_checkpoint_it_did_not_write_cannot_be_rebuilt(
    tmp_path: Path,
) -> None:
    # What an external run's script saves and uploads: the tutorial keys, no spec.
    path = tmp_path / "mine.pt"
    torch.save(
        {
            "epoch": 1,
            "model_state_dict": torch.nn.Linear(3, 2).state_dict(),
            "optimizer_state_dict": {},
            "loss": 0.5,
        },
        path,
    )
    with pytest.raises(ValueError, match=r"no spec, data_info, preprocessing.*model_state_dict"):
        trainboard.load_model(path)


def test_load_model_predicts_what_the_model_predicted_at_the_end_of_training(
    tmp_path: Path,
) -> None:
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "wine"},
            "model": {"name": "mlp"},
            "epochs": 15,
            "optimizer": {"lr": 0.01},
        }
    )
    train(spec, run_dir=tmp_path)
    model = trainboard.load_model(tmp_path / "checkpoints" / "epoch-0015.pt")
    assert not model.training
    from sklearn.datasets import load_wine

    x, y = load_wine(return_X_y=True)
    data = prepare_data(spec.dataset, seed=spec.seed)  # the split and inputs training saw
    with torch.inference_mode():
        in_training = model.net(data.x_val).argmax(dim=1).numpy()
    raw_val = x[data.val_index]  # the same rows, unpreprocessed
    assert (model.predict(raw_val) == in_training).all()
    assert (model.predict(raw_val) == y[data.val_index]).mean() > 0.9
    assert model.predict_proba(raw_val).sum(axis=1) == pytest.approx(1.0, abs=1e-5)
