"""Whether a spec can run: each problem is a SpecProblem at the field that causes it, found
without loading data; the data sets describe themselves as loading them would."""

from __future__ import annotations

from typing import Any

import pytest
from trainboard.training.data import DATASETS, DataInfo, prepare_data
from trainboard.training.data.uploads import upload_info
from trainboard.training.runnable import (
    SpecProblem,
    check_runnable,
    dataset_info,
    validate_names,
)
from trainboard.training.spec import DatasetSpec, RunSpec

LIMIT = 100_000_000
MOONS = DataInfo("classification", "tabular", (2,), 2)


def spec(**changes: Any) -> RunSpec:
    base: dict[str, Any] = {"dataset": {"name": "moons"}, "model": {"name": "mlp"}}
    return RunSpec.model_validate(base | changes)


def problem(run: RunSpec, info: DataInfo | None = MOONS) -> SpecProblem:
    with pytest.raises(SpecProblem) as caught:
        check_runnable(run, info, max_parameters=LIMIT)
    return caught.value


def test_a_spec_that_can_run_passes() -> None:
    check_runnable(spec(), MOONS, max_parameters=LIMIT)


@pytest.mark.parametrize(
    ("changes", "loc", "words"),
    [
        ({"model": {"name": "resnet"}}, ("model", "name"), ["unknown model 'resnet'", "mlp"]),
        ({"optimizer": {"name": "lion"}}, ("optimizer", "name"), ["unknown optimizer 'lion'"]),
        ({"scheduler": {"name": "warm"}}, ("scheduler", "name"), ["unknown scheduler 'warm'"]),
        (
            {"model": {"name": "mlp", "params": {"hidden_size": 3}}},
            ("model", "params"),
            ["hidden_size", "Extra inputs"],
        ),
        (
            {"optimizer": {"name": "sgd", "params": {"momentum": 2}}},
            ("optimizer", "params"),
            ["momentum", "less than 1"],
        ),
        (
            {"scheduler": {"name": "onecycle", "warmup_epochs": 2}},
            ("scheduler", "warmup_epochs"),
            ["not supported", "pct_start"],
        ),
    ],
)
def test_a_bad_name_or_option_is_a_problem_at_its_field(
    changes: dict, loc: tuple, words: list[str]
) -> None:
    found = problem(spec(**changes))
    assert found.loc == loc and all(w in found.message for w in words), found
    assert str(found).startswith(".".join(loc) + ": ")
    with pytest.raises(SpecProblem) as by_names:  # the data is not needed to find it
        validate_names(spec(**changes))
    assert by_names.value.loc == loc


def test_names_are_checked_when_the_data_is_not_known() -> None:
    assert problem(spec(model={"name": "resnet"}), info=None).loc == ("model", "name")
    check_runnable(spec(model={"name": "cnn"}), None, max_parameters=LIMIT)


def test_validated_names_come_with_every_option_completed() -> None:
    run = validate_names(spec(scheduler={"name": "step", "params": {"gamma": 0.5}}))
    assert run.model.params["hidden_sizes"] == [128, 64]
    assert run.optimizer.params == {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "amsgrad": False}
    assert run.scheduler.params == {"step_size": 10, "gamma": 0.5}


def test_a_cnn_on_a_table_is_a_model_problem() -> None:
    found = problem(spec(model={"name": "cnn"}), DataInfo("classification", "tabular", (4,), 3))
    assert found.loc == ("model", "name") and "cnn needs image data" in found.message
    assert found.value == "cnn"
    tokens = DataInfo("classification", "tokens", (15,), 2, vocab_size=2)
    assert problem(spec(), tokens).loc == ("model", "name")


def test_a_model_over_the_limit_is_a_params_problem_with_its_count() -> None:
    run = spec(model={"name": "mlp", "params": {"hidden_sizes": [8]}})  # 67 parameters on iris
    iris = DataInfo("classification", "tabular", (4,), 3)
    check_runnable(run, iris, max_parameters=67)
    with pytest.raises(SpecProblem) as caught:
        check_runnable(run, iris, max_parameters=66)
    assert caught.value.loc == ("model", "params") and "67 parameters" in caught.value.message


def test_a_param_group_matching_nothing_is_a_problem_at_its_pattern() -> None:
    groups = [{"match": "classifier.*"}, {"match": "backbone.*"}]
    found = problem(spec(optimizer={"param_groups": groups}))
    assert found.loc == ("optimizer", "param_groups", 1, "match")
    assert found.value == "backbone.*"
    assert "'backbone.*' matches no parameter" in found.message
    assert "classifier.weight" in found.message


@pytest.mark.parametrize(
    ("loss", "info"),
    [
        ("mse", DataInfo("classification", "tabular", (2,), 2)),
        ("cross_entropy", DataInfo("regression", "tabular", (2,), 1)),
    ],
)
def test_a_loss_that_does_not_fit_the_task_is_a_loss_problem(loss: str, info: DataInfo) -> None:
    found = problem(spec(loss=loss), info)
    assert found.loc == ("loss",) and f"does not fit a {info.task}" in found.message


# --- what a data set will be, without loading it


@pytest.mark.parametrize(
    ("dataset", "loc", "words"),
    [
        ({"name": "nope"}, ("dataset", "name"), ["unknown dataset 'nope'", "moons"]),
        ({"name": "moons", "params": {"n_samples": 1}}, ("dataset", "params"), ["n_samples"]),
        ({"name": "iris", "params": {"extra": 1}}, ("dataset", "params"), ["Extra inputs"]),
    ],
)
def test_a_bad_data_set_is_a_problem_at_its_field(
    dataset: dict, loc: tuple, words: list[str]
) -> None:
    with pytest.raises(SpecProblem) as caught:
        dataset_info(DatasetSpec.model_validate(dataset))
    assert caught.value.loc == loc and all(w in caught.value.message for w in words)


def test_an_upload_is_described_by_the_facts_stored_with_it() -> None:
    upload = upload_info("classification", 5)
    assert dataset_info(DatasetSpec(name="my-csv"), upload=upload) == DataInfo(
        "classification", "tabular", (5,), 2
    )
    assert upload_info("regression", 3).num_outputs == 1
    with pytest.raises(SpecProblem) as caught:
        dataset_info(DatasetSpec(name="my-csv", params={"a": 1}), upload=upload)
    assert caught.value.loc == ("dataset", "params")


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("iris", {}),
        ("wine", {}),
        ("breast_cancer", {}),
        ("diabetes", {}),
        ("digits", {}),
        ("moons", {"n_samples": 40}),
        ("circles", {"n_samples": 40}),
        ("spirals", {"n_samples": 60, "n_classes": 5}),
        ("regression", {"n_samples": 40, "n_features": 3}),
        ("regression", {"n_samples": 40, "n_features": 3, "nonlinear": True}),
        ("sequences", {"n_samples": 40, "length": 8}),
        ("sequences", {"n_samples": 40, "length": 8, "rule": "parity"}),
        ("xor", {"n_samples": 40}),
    ],
)
def test_each_data_set_describes_itself_as_loading_it_shows(name: str, params: dict) -> None:
    dataset = DatasetSpec(name=name, params=params)
    described = dataset_info(dataset)
    loaded = prepare_data(dataset, seed=0).info
    assert described is not None
    assert (
        described.task,
        described.modality,
        described.input_shape,
        described.num_outputs,
        described.vocab_size,
    ) == (loaded.task, loaded.modality, loaded.input_shape, loaded.num_outputs, loaded.vocab_size)


def test_every_registered_data_set_is_described() -> None:
    for plugin in DATASETS:
        assert dataset_info(DatasetSpec(name=plugin.name)) is not None, plugin.name
