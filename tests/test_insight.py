"""The guide's debugging advice, in process: the LR range test and its rule, the one-batch
preflight, the divergence diagnosis (each kind of first non-finite quantity, built so that the
true answer is known), and per-layer gradient norms."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from trainboard.training.checks import run_check
from trainboard.training.data import DataInfo
from trainboard.training.exits import Exit
from trainboard.training.layer_norms import LayerNorms, group_names
from trainboard.training.loop import train
from trainboard.training.lr_find import suggest
from trainboard.training.probe import Probe
from trainboard.training.sinks import MemorySink
from trainboard.training.spec import RunSpec

DIGITS_MLP = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}}
REGRESSION = DataInfo("regression", "tabular", (2,), 1)


def check(kind: str, spec: dict[str, Any], **options: Any) -> tuple[dict[str, Any], MemorySink]:
    sink = MemorySink()
    outcome = run_check(
        kind, RunSpec.model_validate(spec), options, sink=sink, should_stop=lambda: None
    )
    assert outcome.exit is Exit.completed
    return outcome.summary, sink


# --- LR range test


def test_the_suggested_lr_trains_digits_at_least_as_well_as_the_default(tmp_path: Path) -> None:
    summary, sink = check("lr_find", DIGITS_MLP)
    curve = summary["lr_find"]
    assert len(curve["lrs"]) == len(curve["losses"]) == len(sink.steps) > 20
    assert all(a < b for a, b in zip(curve["lrs"], curve["lrs"][1:], strict=False))
    suggested = summary["suggested_lr"]
    assert curve["lrs"][0] <= suggested <= curve["lrs"][-1]
    assert summary["suggestions"]["minimum_over_10"] < suggested * 10

    def accuracy(lr: float | None) -> float:
        spec = {**DIGITS_MLP, "epochs": 3}
        if lr is not None:
            spec["optimizer"] = {"lr": lr}
        outcome = train(RunSpec.model_validate(spec), run_dir=tmp_path / str(lr))
        return outcome.summary["val_accuracy"]

    assert accuracy(suggested) >= accuracy(None)


def test_a_range_where_the_loss_never_falls_says_so_instead_of_a_number() -> None:
    summary, _ = check("lr_find", DIGITS_MLP, start_lr=1e-9, end_lr=1e-6, steps=30)
    assert summary["suggested_lr"] is None
    assert "never fell" in summary["message"]
    assert len(summary["lr_find"]["lrs"]) == 30


def test_the_test_stops_once_the_loss_runs_away() -> None:
    spec = {**DIGITS_MLP, "optimizer": {"name": "sgd", "lr": 0.1}, "grad_clip_norm": None}
    summary, _ = check("lr_find", spec, start_lr=1e-4, end_lr=1000.0, steps=200)
    ran = len(summary["lr_find"]["lrs"])
    assert ran < 200
    assert "ran away" in summary["stopped"] or "became" in summary["stopped"]


def test_the_steepest_descent_rule_on_a_known_curve() -> None:
    lrs = list(np.logspace(-6, 1, 71))
    # A logistic drop centred at lr 1e-3 (fastest there), then a blow-up past 1e-1.
    x = np.log10(lrs)
    losses = list(2 - 1.5 / (1 + np.exp(-4 * (x + 3))) + np.where(x > -1, (x + 1) ** 2, 0))
    steepest, minimum_over_10, _ = suggest(lrs, losses)
    assert steepest == pytest.approx(1e-3, rel=0.3)
    best = lrs[int(np.argmin(losses))]
    assert minimum_over_10 == pytest.approx(best / 10)


# --- preflight


def test_preflight_passes_the_default_digits_mlp() -> None:
    summary, sink = check("preflight", DIGITS_MLP)
    result = summary["preflight"]
    assert result["passed"] is True
    assert result["end_loss"] < result["threshold"] * result["start_loss"]
    assert result["steps"] == len(result["losses"]) == len(sink.steps)


def test_preflight_fails_a_tiny_lr_as_flat_and_an_absurd_one_as_rising_or_nan() -> None:
    flat = check("preflight", {**DIGITS_MLP, "optimizer": {"lr": 1e-7}})[0]["preflight"]
    assert flat["passed"] is False
    assert "flat" in flat["message"] and "learning rate may be too low" in flat["message"]
    absurd = {**DIGITS_MLP, "optimizer": {"name": "sgd", "lr": 10.0}, "grad_clip_norm": None}
    high = check("preflight", absurd)[0]["preflight"]
    assert high["passed"] is False
    assert "too high" in high["message"]


def test_preflight_names_frozen_parameters_and_ones_the_loss_never_reaches() -> None:
    from trainboard.training.preflight import _why

    message = _why(2.3, 2.29, 300, 1e-3, frozen=2, unreached=["head.weight"])
    assert "2 parameter tensors are frozen" in message
    assert "never reaches head.weight" in message and "detached" in message


def test_preflight_and_lr_find_on_the_command_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text('{"dataset": {"name": "digits"}, "model": {"name": "mlp"}}')
    passed = subprocess.run(
        [sys.executable, "-m", "trainboard", "preflight", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("Passed")
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "lr_find": {"steps": 1}}'
    )
    refused = subprocess.run(
        [sys.executable, "-m", "trainboard", "lr-find", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "steps" in refused.stderr and "Traceback" not in refused.stderr


# --- divergence diagnosis: each first non-finite quantity, made on purpose


class TwoLayers(nn.Module):
    def __init__(self, transform: Any = None) -> None:
        super().__init__()
        self.first = nn.Linear(2, 4)
        self.second = nn.Linear(4, 1)
        self.transform = transform or (lambda h: h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.transform(self.first(x)))


def probe_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float = 0.1) -> Probe:
    probe = Probe(step=7)
    probe.attach(model, x, y, REGRESSION)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x).squeeze(1), y)
    loss.backward()
    optimizer.step()
    probe.detach(model, loss)
    return probe


def test_a_weight_that_was_already_nan_is_named() -> None:
    model = TwoLayers()
    with torch.no_grad():
        model.second.bias.fill_(math.nan)
    finding = probe_step(model, torch.ones(3, 2), torch.zeros(3)).finding
    assert finding is not None
    assert (finding.what, finding.where) == ("weights", "second.bias")


def test_inputs_that_hold_inf_are_the_datas_fault() -> None:
    x = torch.ones(3, 2)
    x[1, 0] = math.inf
    finding = probe_step(TwoLayers(), x, torch.zeros(3)).finding
    assert finding is not None
    assert (finding.what, finding.module, finding.where) == ("activation", "first", "first.weight")
    assert finding.bad_inputs
    from trainboard.training.diagnosis import suggestions

    tips = suggestions(finding, [1.0, 1.1], 0.1, fp16=False, clipped=False)
    assert tips[0].startswith("Check the data")


def test_an_activation_that_overflows_is_named_by_its_module() -> None:
    model = TwoLayers(transform=lambda h: torch.exp(h * 1e3))
    finding = probe_step(model, torch.ones(3, 2), torch.zeros(3)).finding
    assert finding is not None
    assert (finding.what, finding.module) == ("activation", "second")
    assert finding.where in model.state_dict()
    assert not finding.bad_inputs


def test_a_loss_that_overflows_from_finite_outputs_is_the_loss() -> None:
    model = TwoLayers()
    with torch.no_grad():
        model.second.bias.fill_(1e30)  # finite outputs, whose square overflows float32
    finding = probe_step(model, torch.ones(3, 2), torch.zeros(3)).finding
    assert finding is not None and finding.what == "loss"


def test_a_gradient_that_alone_goes_nan_is_named_by_its_parameter() -> None:
    # sqrt at 0 is finite forward and infinite backward.
    model = TwoLayers(transform=lambda h: torch.sqrt(torch.relu(h) * 0))
    finding = probe_step(model, torch.ones(3, 2), torch.zeros(3)).finding
    assert finding is not None
    assert finding.what == "gradient" and finding.where.startswith("first.")


def test_an_update_that_overflows_finite_weights_is_the_weights() -> None:
    model = TwoLayers()
    finding = probe_step(model, torch.ones(3, 2), torch.full((3,), 100.0), lr=3e38).finding
    assert finding is not None and finding.what == "weights"
    assert finding.where in model.state_dict()


def test_a_diverging_run_gets_a_diagnosis_from_the_replayed_step(tmp_path: Path) -> None:
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "diabetes"},
            "model": {"name": "mlp"},
            "optimizer": {"name": "sgd", "lr": 10.0},
            "grad_clip_norm": None,
            "epochs": 3,
            "log_every_steps": 10,
        }
    )
    sink = MemorySink()
    outcome = train(spec, run_dir=tmp_path, sink=sink)
    assert outcome.exit is Exit.diverged
    diagnosis = outcome.summary["diagnosis"]
    # The loop saw it at a sync (step 10 at the latest); the replay found the step itself.
    assert 1 <= diagnosis["step"] <= 10
    assert diagnosis["what"] in {"activation", "loss", "gradient", "weights"}
    names = train_state_names(spec)
    assert diagnosis["where"] in names
    finite = [n for n in diagnosis["recent_grad_norms"] if n is not None]
    assert len(diagnosis["recent_grad_norms"]) == diagnosis["step"]
    assert finite[-1] > 10 * finite[0]  # exploding, as the suggestions say
    assert any("Clip gradients" in s for s in diagnosis["suggestions"])
    assert any("lower learning rate" in s for s in diagnosis["suggestions"])
    assert diagnosis["lr"] == 10.0 and diagnosis["method"] == "replay"
    assert diagnosis["detail"] in outcome.message


def train_state_names(spec: RunSpec) -> list[str]:
    from trainboard.training.setup import build_setup

    return list(build_setup(spec).model.state_dict())


# --- per-layer gradient norms


def test_layer_norms_are_each_parameters_gradient_norm() -> None:
    model = TwoLayers()
    nn.functional.mse_loss(model(torch.randn(5, 2)).squeeze(1), torch.randn(5)).backward()
    norms = LayerNorms(model)
    values = norms.as_metrics(norms.measure())
    for name, param in model.named_parameters():
        expected = torch.linalg.vector_norm(param.grad).item()
        assert values[f"layer_grad_norm/{name}"] == pytest.approx(expected, rel=1e-5)


def test_many_parameters_are_grouped_by_module_with_the_norm_of_the_group() -> None:
    model = nn.Sequential(*[nn.Linear(3, 3) for _ in range(40)])  # 80 parameter tensors
    model(torch.randn(2, 3)).sum().backward()
    norms = LayerNorms(model)
    values = norms.as_metrics(norms.measure())
    assert len(values) == 40
    layer = model[7]
    expected = math.sqrt(layer.weight.grad.square().sum() + layer.bias.grad.square().sum())
    assert values["layer_grad_norm/7"] == pytest.approx(expected, rel=1e-5)
    rows, index = group_names(["a.b.c", "a.b.d", "a.e", "f"], limit=2)
    assert rows == ["a", "f"] and index == [0, 0, 0, 1]
    wide = nn.Sequential(*[nn.Linear(2, 2) for _ in range(100)])  # 100 top-level modules
    rows, index = group_names([n for n, _ in wide.named_parameters()])
    assert len(rows) <= 64 and rows[0] == "0..1" and index[:4] == [0, 0, 0, 0]


def test_lr_find_settings_and_suggestions_stay_inside_the_tested_range() -> None:
    from pydantic import ValidationError
    from trainboard.training.check_settings import LrFindSettings

    with pytest.raises(ValidationError):
        LrFindSettings(start_lr=1e-310)
    with pytest.raises(ValidationError, match="end_lr must be above start_lr"):
        LrFindSettings(start_lr=1.0, end_lr=0.5)
    lrs = list(np.logspace(-3, 0, 40))
    falls_at_once = [1.0, 0.2] + [0.2 + 0.05 * i for i in range(38)]
    steepest, minimum_over_10, message = suggest(lrs, falls_at_once)
    assert steepest is None and minimum_over_10 == lrs[0]  # lrs[1] / 10 is below the range
    assert "fell at once" in message


def test_the_replay_starts_from_the_latest_checkpoint_before_the_bad_epoch(tmp_path: Path) -> None:
    from trainboard.training.diagnosis import latest_before

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for epoch in (1, 2, 5):
        (folder / f"epoch-{epoch:04d}.pt").write_bytes(b"")
    assert latest_before(folder, 5) == folder / "epoch-0002.pt"
    assert latest_before(folder, 1) is None
    assert latest_before(tmp_path / "none", 3) is None


def test_the_loop_logs_per_layer_norms_every_log_every_steps(tmp_path: Path) -> None:
    spec = RunSpec.model_validate({**DIGITS_MLP, "epochs": 1, "log_every_steps": 5})
    sink = MemorySink()
    train(spec, run_dir=tmp_path, sink=sink)
    names = train_state_names(spec)
    weights = [n for n in names if n.endswith("weight") or n.endswith("bias")]
    assert sink.steps and all(step % 5 == 0 for step, _ in sink.steps)
    for _, metrics in sink.steps:
        logged = {k.removeprefix("layer_grad_norm/") for k in metrics if "layer_grad" in k}
        assert logged == set(weights)
