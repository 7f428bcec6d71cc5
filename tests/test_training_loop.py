"""The shared loop: optimizers, schedulers, clipping, resume, reproducibility, guards, stopping."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from trainboard.training.checkpoint import CheckpointEntry, load_checkpoint
from trainboard.training.data import prepare_data
from trainboard.training.exits import Exit
from trainboard.training.loop import train
from trainboard.training.models import build_model
from trainboard.training.optim import build_optimizer
from trainboard.training.runtime import seed_everything
from trainboard.training.sinks import MemorySink
from trainboard.training.spec import RunSpec

from tests.helpers import tiny_run_spec

TIMING = {"epoch_seconds", "samples_per_second"}


def spec(**overrides: Any) -> RunSpec:
    """The tests' tiny spec, a little bigger and with dropout, so its RNG use is exercised."""
    return tiny_run_spec(
        **{
            "dataset": {"name": "moons", "params": {"n_samples": 300}},
            "model": {"name": "mlp", "params": {"hidden_sizes": [32], "dropout": 0.2}},
            "epochs": 4,
        }
        | overrides
    )


def run(s: RunSpec, tmp_path: Path, **kwargs: Any) -> tuple[Any, MemorySink]:
    sink = MemorySink()
    return train(s, run_dir=tmp_path, sink=sink, **kwargs), sink


def without_timing(epochs: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in e.items() if k not in TIMING} for e in epochs]


@pytest.mark.parametrize(
    ("name", "params", "torch_class", "expected"),
    [
        (
            "sgd",
            {"momentum": 0.9, "nesterov": True},
            torch.optim.SGD,
            {"momentum": 0.9, "nesterov": True},
        ),
        ("adam", {"beta1": 0.8}, torch.optim.Adam, {"betas": (0.8, 0.999)}),
        ("adamw", {}, torch.optim.AdamW, {"betas": (0.9, 0.999)}),
        ("rmsprop", {"alpha": 0.95}, torch.optim.RMSprop, {"alpha": 0.95}),
    ],
)
def test_each_optimizer_is_built_as_asked_and_lowers_the_loss(
    name: str, params: dict, torch_class: type, expected: dict, tmp_path: Path
) -> None:
    s = spec(
        optimizer={
            "name": name,
            "lr": 0.05 if name == "sgd" else 0.01,
            "weight_decay": 0.001,
            "params": params,
        }
    )
    data = prepare_data(s.dataset, seed=0)
    optimizer = build_optimizer(build_model(s.model, data.info), s.optimizer)
    assert type(optimizer) is torch_class
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == 0.001
    for key, value in expected.items():
        assert group[key] == value
    outcome, sink = run(s.model_copy(update={"epochs": 5}), tmp_path)
    assert outcome.exit is Exit.completed
    assert sink.epochs[-1]["train_loss"] < sink.epochs[0]["train_loss"]


def test_parameter_groups_match_names_and_can_skip_decay_on_biases_and_norms() -> None:
    s = spec(
        model={"name": "mlp", "params": {"hidden_sizes": [16], "batch_norm": True}},
        optimizer={
            "name": "sgd",
            "lr": 0.1,
            "weight_decay": 0.05,
            "no_decay_bias_norm": True,
            "param_groups": [{"match": "classifier.*", "lr_scale": 10.0, "weight_decay": 0.2}],
        },
    )
    model = build_model(s.model, prepare_data(s.dataset, seed=0).info)
    optimizer = build_optimizer(model, s.optimizer)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            seen[names[id(p)]] = (group["lr"], group["weight_decay"])
    assert seen["classifier.weight"] == (pytest.approx(1.0), 0.2)
    assert seen["classifier.bias"] == (pytest.approx(1.0), 0.2)  # the group's own decay wins
    assert seen["features.1.weight"] == (0.1, 0.05)  # Linear weight: decayed
    assert seen["features.1.bias"] == (0.1, 0.0)
    assert seen["features.2.weight"] == (0.1, 0.0)  # BatchNorm weight
    assert optimizer.param_groups[0]["lr"] == 0.1  # `lr` reports the first group's


def test_a_param_group_pattern_that_matches_nothing_is_an_error() -> None:
    s = spec(optimizer={"name": "adam", "param_groups": [{"match": "backbone.*", "lr_scale": 0.1}]})
    model = build_model(s.model, prepare_data(s.dataset, seed=0).info)
    with pytest.raises(ValueError, match="backbone"):
        build_optimizer(model, s.optimizer)


LR = 0.1


@pytest.mark.parametrize(
    ("scheduler", "formula"),
    [
        ({"name": "none"}, lambda e: LR),
        (
            {"name": "step", "params": {"step_size": 2, "gamma": 0.5}},
            lambda e: LR * 0.5 ** ((e - 1) // 2),
        ),
        (
            {"name": "multistep", "params": {"milestones": [2, 4], "gamma": 0.1}},
            lambda e: LR * 0.1 ** sum(e - 1 >= m for m in (2, 4)),
        ),
        ({"name": "exponential", "params": {"gamma": 0.8}}, lambda e: LR * 0.8 ** (e - 1)),
        (
            {"name": "cosine", "params": {"eta_min": 0.001}},
            lambda e: 0.001 + (LR - 0.001) * (1 + math.cos(math.pi * (e - 1) / 6)) / 2,
        ),
        (
            {"name": "cosine", "warmup_epochs": 2},
            lambda e: (
                LR * (1 / 3 + (2 / 3) * (e - 1) / 2)
                if e <= 2
                else LR * (1 + math.cos(math.pi * (e - 3) / 4)) / 2
            ),
        ),
    ],
    ids=["none", "step", "multistep", "exponential", "cosine", "cosine-warmup"],
)
def test_epoch_scheduler_lr_follows_the_formula(
    scheduler: dict, formula: Any, tmp_path: Path
) -> None:
    s = spec(epochs=6, optimizer={"name": "sgd", "lr": LR}, scheduler=scheduler)
    _, sink = run(s, tmp_path)
    lrs = [e["lr"] for e in sink.epochs]
    assert lrs == pytest.approx([formula(e) for e in range(1, 7)], rel=1e-9)


def test_onecycle_steps_every_batch_rising_to_max_lr_then_annealing(tmp_path: Path) -> None:
    s = spec(
        epochs=4,
        optimizer={"name": "sgd", "lr": LR},
        scheduler={"name": "onecycle", "params": {"pct_start": 0.25}},
        log_every_steps=1,
    )
    _, sink = run(s, tmp_path)
    lrs = [m["step/lr"] for _, m in sink.steps]
    total = len(lrs)
    peak = lrs.index(max(lrs))
    # torch's OneCycleLR: max_lr/div_factor at the first step, max_lr at step pct_start*total - 1,
    # then cosine annealing to initial/final_div_factor at the last step.
    initial = LR / 25
    assert lrs[0] == pytest.approx(initial)
    assert peak == round(0.25 * total) - 1 and lrs[peak] == pytest.approx(LR)
    assert lrs[-1] == pytest.approx(initial / 1e4)
    assert all(b > a for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert all(b < a for a, b in itertools.pairwise(lrs[peak:]))


def test_plateau_cuts_lr_when_val_loss_stops_improving(tmp_path: Path) -> None:
    # lr so small that val_loss barely moves: every epoch counts as a plateau (patience 0).
    s = spec(
        epochs=4,
        optimizer={"name": "sgd", "lr": 1e-6},
        scheduler={"name": "plateau", "params": {"factor": 0.5, "patience": 0, "threshold": 0.1}},
    )
    _, sink = run(s, tmp_path)
    # Epoch 1 sets the best; each later epoch fails to improve and halves the next epoch's lr.
    assert [e["lr"] for e in sink.epochs] == pytest.approx([1e-6, 1e-6, 5e-7, 2.5e-7])


def test_clipping_bounds_the_update_and_grad_norm_is_measured_before_clipping(
    tmp_path: Path,
) -> None:
    clip, lr = 0.01, 1.0
    s = spec(
        epochs=1,
        overfit_batches=1,
        grad_clip_norm=clip,
        model={"name": "mlp", "params": {"hidden_sizes": [32], "dropout": 0.0}},
        optimizer={"name": "sgd", "lr": lr, "weight_decay": 0.0, "params": {"momentum": 0.0}},
    )
    _, sink = run(s, tmp_path)
    seed_everything(s.seed, True)
    initial = build_model(s.model, prepare_data(s.dataset, seed=s.seed).info).state_dict()
    trained = load_checkpoint(tmp_path / "checkpoints" / "epoch-0001.pt")["model_state_dict"]
    update = torch.sqrt(sum(((trained[k] - initial[k]) ** 2).sum() for k in initial))
    assert sink.epochs[0]["grad_norm"] > 10 * clip  # the raw gradient was far above the bound
    assert update <= lr * clip * (1 + 1e-5)  # one SGD step with the clipped gradient


def test_a_run_stopped_and_resumed_matches_an_uninterrupted_one_exactly(tmp_path: Path) -> None:
    s = spec(
        dataset={"name": "digits"},
        model={"name": "mlp", "params": {"hidden_sizes": [32], "dropout": 0.3, "batch_norm": True}},
        optimizer={"name": "adamw", "lr": 0.003},
        scheduler={"name": "cosine"},
        epochs=4,
    )
    _, straight = run(s, tmp_path / "straight")

    class StopAfterSecond(MemorySink):
        def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
            super().log_checkpoints(entries)
            self.stop = Exit.interrupted if entries[-1].epoch == 2 else None

    first = StopAfterSecond()
    stopped = train(
        s,
        run_dir=tmp_path / "resumed",
        sink=first,
        should_stop=lambda: getattr(first, "stop", None),
    )
    assert stopped.exit is Exit.interrupted and stopped.epoch == 2
    latest = tmp_path / "resumed" / "checkpoints" / "epoch-0002.pt"
    _, rest = run(s, tmp_path / "resumed", resume_from=latest)
    assert without_timing(first.epochs + rest.epochs) == without_timing(straight.epochs)


def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path: Path) -> None:
    _, a = run(spec(), tmp_path / "a")
    _, b = run(spec(), tmp_path / "b")
    _, c = run(spec(seed=7), tmp_path / "c")
    assert without_timing(a.epochs) == without_timing(b.epochs)
    assert without_timing(a.epochs) != without_timing(c.epochs)


def test_a_nan_loss_stops_the_run_as_diverged_with_where_and_what_to_try(tmp_path: Path) -> None:
    s = spec(
        dataset={"name": "diabetes"},
        grad_clip_norm=None,
        epochs=20,
        optimizer={"name": "sgd", "lr": 10.0, "params": {"momentum": 0.9}},
    )
    outcome, sink = run(s, tmp_path)
    assert outcome.exit is Exit.diverged
    assert "diverged at epoch" in outcome.message and "step" in outcome.message
    assert "lower learning rate" in outcome.message
    for entries in sink.checkpoints:
        for entry in entries:
            assert math.isfinite(entry.metrics["val_loss"])


def test_early_stopping_ends_the_run_when_the_metric_stops_improving(tmp_path: Path) -> None:
    s = spec(epochs=10, early_stopping={"patience": 2, "min_delta": 100.0})
    outcome, sink = run(s, tmp_path)
    assert outcome.exit is Exit.early_stopped
    assert outcome.epoch == 3 and len(sink.epochs) == 3
    assert "did not improve for 2 epochs" in outcome.message
    assert (tmp_path / "checkpoints" / "epoch-0003.pt").exists()


def test_overfit_batches_drives_the_loss_towards_zero(tmp_path: Path) -> None:
    s = spec(
        dataset={"name": "digits"},
        overfit_batches=1,
        epochs=150,
        grad_clip_norm=None,
        model={"name": "mlp", "params": {"hidden_sizes": [64], "dropout": 0.0}},
        optimizer={"name": "adam", "lr": 0.01, "weight_decay": 0.0},
        checkpoint={"every_epochs": 0},
    )
    _, sink = run(s, tmp_path)
    assert sink.epochs[0]["train_loss"] > 1.0
    assert sink.epochs[-1]["train_loss"] < 0.01
    assert sink.epochs[-1]["train_accuracy"] == 1.0


def test_epoch_and_step_metrics_have_the_api_names(tmp_path: Path) -> None:
    from trainboard.training.setup import build_setup

    s = spec(epochs=2, log_every_steps=2)
    _, sink = run(s, tmp_path)
    assert set(sink.epochs[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "grad_norm",
        "lr",
        "epoch_seconds",
        "samples_per_second",
        "train_accuracy",
        "val_accuracy",
    }
    steps = [step for step, _ in sink.steps]
    assert steps == list(range(2, steps[-1] + 1, 2))
    layers = {f"layer_grad_norm/{name}" for name, _ in build_setup(s).model.named_parameters()}
    assert set(sink.steps[0][1]) == {"step/train_loss", "step/grad_norm", "step/lr"} | layers


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_trains_on_the_gpu(amp: str, tmp_path: Path) -> None:
    s = spec(dataset={"name": "digits"}, model={"name": "cnn"}, amp=amp, device="cuda", epochs=3)
    outcome, sink = run(s, tmp_path)
    assert outcome.exit is Exit.completed
    assert sink.epochs[-1]["val_accuracy"] > 0.8
    state = load_checkpoint(tmp_path / "checkpoints" / "epoch-0003.pt")
    assert bool(state["scaler_state_dict"]) == (amp == "fp16")


def test_bf16_autocast_runs_on_cpu(tmp_path: Path) -> None:
    outcome, sink = run(spec(amp="bf16", epochs=2), tmp_path)
    assert outcome.exit is Exit.completed
    assert sink.epochs[-1]["val_loss"] < sink.epochs[0]["val_loss"] * 1.5
