"""One run on several devices (torch.distributed with gloo on CPU): the same per-epoch metrics as
one device with the same global batch, a checkpoint a one-device model loads, and the specs that
cannot be split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import trainboard
from trainboard.training.checkpoint import CheckpointManager
from trainboard.training.data import preprocess
from trainboard.training.data.types import DataInfo
from trainboard.training.exits import End, Failure, Outcome
from trainboard.training.models import build_model
from trainboard.training.runnable import SpecProblem, check_runnable
from trainboard.training.sinks import CheckpointFiles, MemorySink
from trainboard.training.spec import ModelSpec, RunSpec
from trainboard.worker.job import Job, run_job

pytestmark = pytest.mark.slow

# The digits MLP without dropout: nothing random after the initial weights, which every rank
# draws from the same seed (and DDP copies from rank 0 anyway).
DIGITS_MLP: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "params": {"hidden_sizes": [64], "dropout": 0.0}},
    "optimizer": {"name": "adamw", "lr": 0.003},
    "epochs": 3,
    "batch_size": 50,  # 1437 training rows: the last batch (37) splits unevenly, 19 + 18
}


def train_job(
    spec: dict[str, Any], run_dir: Path, resume_from: Path | None = None
) -> tuple[End, MemorySink]:
    run_dir.mkdir(parents=True, exist_ok=True)
    sink = MemorySink()
    manager = CheckpointManager(run_dir / "checkpoints", RunSpec.model_validate(spec).checkpoint)
    job = Job(
        run_id=1,
        attempt=1,
        device="cpu",
        spec=spec,
        run_dir=run_dir,
        uploads_dir=run_dir / "uploads",
        resume_from=resume_from,
    )
    end = run_job(
        job, sink=sink, checkpoints=CheckpointFiles(manager, sink), should_stop=lambda: None
    )
    return end, sink


def test_two_devices_match_one_with_the_same_global_batch_and_save_a_plain_checkpoint(
    tmp_path: Path,
) -> None:
    one, one_sink = train_job({**DIGITS_MLP, "devices": 1}, tmp_path / "one")
    two, two_sink = train_job({**DIGITS_MLP, "devices": 2}, tmp_path / "two")
    assert isinstance(one, Outcome) and isinstance(two, Outcome)
    assert one.exit == two.exit == "completed"
    assert [e["epoch"] for e in two_sink.epochs] == [1, 2, 3]
    for key in ("val_loss", "train_loss", "val_accuracy", "train_accuracy"):
        expected = [e[key] for e in one_sink.epochs]
        assert [e[key] for e in two_sink.epochs] == pytest.approx(expected, rel=2e-3), key

    # Only rank 0 keeps checkpoints, and what it keeps loads into one-device models.
    saved = sorted((tmp_path / "two" / "checkpoints").glob("*.pt"))
    assert [p.name for p in saved] == [
        p.name for p in sorted((tmp_path / "one" / "checkpoints").glob("*.pt"))
    ]
    final = saved[-1]
    state = torch.load(final, weights_only=True)
    assert not any(key.startswith("module.") for key in state["model_state_dict"])
    assert state["spec"]["devices"] == 2
    info = DataInfo(**state["data_info"])
    plain = build_model(ModelSpec.model_validate(DIGITS_MLP["model"]), info)
    plain.load_state_dict(state["model_state_dict"])  # the tutorial's two lines
    plain.eval()
    loaded = trainboard.load_model(final)
    rows = torch.rand(5, 64) * 16
    with torch.inference_mode():
        by_hand = plain(preprocess.apply(loaded.preprocessing, rows)).argmax(dim=1).numpy()
    assert (loaded.predict(rows) == by_hand).all()


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"devices": 4, "batch_size": 7}, ("batch_size",)),
        ({"devices": 2, "device": "cuda:1"}, ("device",)),
    ],
)
def test_a_spec_that_cannot_be_split_over_its_devices_names_the_field(
    change: dict[str, Any], loc: tuple[str, ...]
) -> None:
    spec = RunSpec.model_validate({**DIGITS_MLP, **change})
    with pytest.raises(SpecProblem) as problem:
        check_runnable(spec, None, max_parameters=10**9)
    assert problem.value.loc == loc and "devices" in problem.value.message


def test_devices_is_bounded() -> None:
    with pytest.raises(ValueError, match="devices"):
        RunSpec.model_validate({**DIGITS_MLP, "devices": 0})
    with pytest.raises(ValueError, match="devices"):
        RunSpec.model_validate({**DIGITS_MLP, "devices": 65})


def test_a_resume_with_dropout_on_two_devices_continues_every_ranks_random_numbers(
    tmp_path: Path,
) -> None:
    dropout = {
        **DIGITS_MLP,
        "model": {"name": "mlp", "params": {"hidden_sizes": [64], "dropout": 0.3}},
        "devices": 2,
    }
    whole, whole_sink = train_job(dropout, tmp_path / "whole")
    first, _ = train_job({**dropout, "epochs": 2}, tmp_path / "first")
    assert isinstance(whole, Outcome) and isinstance(first, Outcome)
    checkpoint = sorted((tmp_path / "first" / "checkpoints").glob("*.pt"))[-1]
    assert len(torch.load(checkpoint, weights_only=True)["rank_rngs"]) == 2
    rest, rest_sink = train_job(dropout, tmp_path / "rest", resume_from=checkpoint)
    assert isinstance(rest, Outcome) and [e["epoch"] for e in rest_sink.epochs] == [3]
    assert rest_sink.epochs[0]["val_loss"] == whole_sink.epochs[2]["val_loss"]
    assert rest_sink.epochs[0]["train_loss"] == whole_sink.epochs[2]["train_loss"]


def test_every_rank_agrees_that_a_run_diverged(tmp_path: Path) -> None:
    diverging = {
        "dataset": {"name": "diabetes"},
        "model": {"name": "mlp", "params": {"batch_norm": True}},
        "optimizer": {"name": "sgd", "lr": 10.0},
        "grad_clip_norm": None,
        "epochs": 3,
        "log_every_steps": 1,
        "devices": 2,
    }
    end, sink = train_job(diverging, tmp_path / "diverging")
    assert isinstance(end, Outcome) and end.exit == "diverged", end
    assert end.summary["diagnosis"]["method"] == "examined"  # no replay on one device
    assert sink.steps  # rank 0 reported the steps before the bad one


def test_an_error_on_every_rank_keeps_its_message_and_is_not_retried(tmp_path: Path) -> None:
    spec = {**DIGITS_MLP, "epochs": 1, "devices": 2, "early_stopping": {"monitor": "nope"}}
    end, _ = train_job(spec, tmp_path / "bad-monitor")
    assert isinstance(end, Failure) and not end.retry
    assert "no metric named 'nope'" in end.message
