"""A sweep's space: a trial's spec from the base and its params, the grid, the values checked
before anything is queued."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from trainboard.sweeps.space import SweepCreate, probe_specs, trial_spec
from trainboard.training.runnable import validate_names
from trainboard.training.spec import RunSpec

BASE = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp"},
    "optimizer": {"name": "adamw", "lr": 0.001, "params": {"beta1": 0.8}},
}


def request(**overrides: object) -> SweepCreate:
    body = {"base": BASE, "space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 0.1}}}
    return SweepCreate.model_validate(body | overrides)


def test_a_trial_that_picks_another_optimizer_gets_its_defaults_not_the_bases_options() -> None:
    base = RunSpec.model_validate(BASE)
    sgd = validate_names(trial_spec(base, {"optimizer.name": "sgd"}, "trial 0"))
    assert sgd.optimizer.name == "sgd" and "beta1" not in sgd.optimizer.params
    kept = trial_spec(base, {"optimizer.name": "adamw", "optimizer.lr": 0.1}, "trial 1")
    assert kept.optimizer.params == {"beta1": 0.8} and kept.optimizer.lr == 0.1
    set_too = trial_spec(
        base, {"optimizer.name": "sgd", "optimizer.params.momentum": 0.5}, "trial 2"
    )
    assert set_too.optimizer.params == {"momentum": 0.5}
    assert set_too.name == "trial 2"


def test_the_grid_is_each_dimensions_values_and_caps_the_trials() -> None:
    grid = request(
        sampler="grid",
        n_trials=100,
        space={
            "optimizer.lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01},
            "batch_size": {"type": "int", "low": 16, "high": 64, "step": 16},
            "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam"]},
        },
    )
    assert grid.grid() == {
        "optimizer.lr": [0.01, 0.02, 0.03],
        "batch_size": [16, 32, 48, 64],
        "optimizer.name": ["sgd", "adam"],
    }
    assert grid.trials() == 24
    with pytest.raises(ValueError, match=r"optimizer\.lr: the grid sampler needs a step"):
        request(sampler="grid").grid()


def test_bad_dimensions_are_refused_with_their_reason() -> None:
    for space, reason in (
        ({"optimizer.lr": {"type": "float", "low": 1.0, "high": 0.1}}, "low must not be above"),
        ({"optimizer.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "log scale"),
        ({"optimizer.lr": {"type": "categorical", "choices": []}}, "at least 1"),
        ({"Bad Path": {"type": "int", "low": 1, "high": 2}}, "pattern"),
    ):
        with pytest.raises(ValidationError, match=reason):
            request(space=space)


def test_the_probes_cover_every_edge_and_choice_and_their_combinations() -> None:
    space = request(
        space={
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam", "adamw"]},
        }
    )
    probes = probe_specs(space)
    singles = [params for _, params in probes if len(params) == 1]
    assert {"optimizer.lr": 0.1} in singles and {"optimizer.name": "adam"} in singles
    combos = [params for _, params in probes if len(params) == 2]
    assert len(combos) == 6 and {"optimizer.lr": 1e-4, "optimizer.name": "sgd"} in combos


def test_a_huge_int_range_is_never_listed() -> None:
    huge = request(
        space={"batch_size": {"type": "int", "low": -4_124_622, "high": 501_445_326_794}}
    )
    assert huge.space["batch_size"].edges() == [-4_124_622, 501_445_326_794]
    assert len(probe_specs(huge)) == 4  # each edge alone, and their one-dimension combinations
    grid = request(sampler="grid", space=huge.space)
    with pytest.raises(ValueError, match="more than 10000 points"):
        grid.grid()
