"""Data sets, models and preprocessing: each trains to a sensible score; bad input is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from trainboard.training.data import DATASETS, DataInfo, dataset_catalog, prepare_data
from trainboard.training.data.tables import TableError, check_target, infer_task, read_csv
from trainboard.training.loop import train
from trainboard.training.models import MODELS, IncompatibleData, build_model
from trainboard.training.runnable import validate_names
from trainboard.training.sinks import MemorySink
from trainboard.training.spec import DatasetSpec, ModelSpec, RunSpec

IRIS = DataInfo("classification", "tabular", (4,), 3)


def fit(tmp_path: Path, dataset: str, model: str, epochs: int, **extra: Any) -> dict[str, float]:
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": dataset, "params": extra.pop("data_params", {})},
            "model": {"name": model, "params": extra.pop("model_params", {})},
            "epochs": epochs,
            "checkpoint": {"every_epochs": 0},
            **extra,
        }
    )
    sink = MemorySink()
    train(spec, run_dir=tmp_path, sink=sink)
    return sink.epochs[-1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "model", "epochs", "extra", "metric", "threshold"),
    [
        ("digits", "cnn", 10, {"optimizer": {"lr": 3e-3}}, "val_accuracy", 0.95),
        ("iris", "mlp", 30, {"optimizer": {"lr": 1e-2}, "batch_size": 16}, "val_accuracy", 0.9),
        ("wine", "mlp", 20, {"optimizer": {"lr": 1e-2}, "batch_size": 16}, "val_accuracy", 0.9),
        ("breast_cancer", "mlp", 15, {"optimizer": {"lr": 1e-2}}, "val_accuracy", 0.92),
        ("diabetes", "mlp", 30, {"optimizer": {"lr": 3e-3}, "batch_size": 32}, "val_loss", -0.7),
        ("moons", "mlp", 20, {"optimizer": {"lr": 1e-2}}, "val_accuracy", 0.9),
        ("circles", "mlp", 20, {"optimizer": {"lr": 1e-2}}, "val_accuracy", 0.85),
        (
            "spirals",
            "mlp",
            40,
            {"optimizer": {"lr": 1e-2}, "model_params": {"hidden_sizes": [128, 128]}},
            "val_accuracy",
            0.95,
        ),
        ("regression", "linear", 20, {"optimizer": {"lr": 1e-2}}, "val_loss", -0.05),
        (
            "regression",
            "mlp",
            20,
            {"optimizer": {"lr": 1e-2}, "data_params": {"nonlinear": True}},
            "val_loss",
            -0.3,
        ),
        ("sequences", "transformer", 6, {"optimizer": {"lr": 1e-3}}, "val_accuracy", 0.9),
    ],
)
def test_each_data_set_trains_to_a_sensible_score(
    tmp_path: Path,
    dataset: str,
    model: str,
    epochs: int,
    extra: dict,
    metric: str,
    threshold: float,
) -> None:
    # A negative threshold means "at most": regression losses are MSE on standardized targets,
    # so val_loss < 0.7 is R^2 > 0.3.
    value = fit(tmp_path, dataset, model, epochs, **extra)[metric]
    assert value >= threshold if threshold > 0 else value <= -threshold


def test_digits_are_1x8x8_images_and_the_split_is_stratified_and_seeded() -> None:
    a = prepare_data(DatasetSpec(name="digits", val_fraction=0.2), seed=3)
    b = prepare_data(DatasetSpec(name="digits", val_fraction=0.2), seed=3)
    c = prepare_data(DatasetSpec(name="digits", val_fraction=0.2), seed=4)
    assert tuple(a.x_train.shape[1:]) == (1, 8, 8) and float(a.x_train.max()) <= 1.0
    assert (a.val_index == b.val_index).all() and not (a.val_index == c.val_index).all()
    counts = np.bincount(a.y_val.numpy(), minlength=10) / len(a.y_val)
    overall = np.bincount(np.concatenate([a.y_train.numpy(), a.y_val.numpy()])) / 1797
    assert np.abs(counts - overall).max() < 0.02


def test_tabular_preprocessing_is_fitted_on_the_train_split_only() -> None:
    data = prepare_data(DatasetSpec(name="wine"), seed=0)
    assert data.x_train.mean(dim=0).abs().max() < 1e-5  # standardized with train statistics
    assert data.x_val.mean(dim=0).abs().max() > 1e-3  # val is transformed, not refitted


def test_a_model_that_cannot_take_the_data_is_refused_clearly() -> None:
    iris = prepare_data(DatasetSpec(name="iris"), seed=0).info
    tokens = prepare_data(DatasetSpec(name="sequences", params={"n_samples": 50}), seed=0).info
    with pytest.raises(IncompatibleData, match="cnn needs image data"):
        build_model(
            RunSpec.model_validate({"dataset": {"name": "iris"}, "model": {"name": "cnn"}}).model,
            iris,
        )
    with pytest.raises(IncompatibleData, match="transformer needs a token-sequence"):
        build_model(
            RunSpec.model_validate(
                {"dataset": {"name": "iris"}, "model": {"name": "transformer"}}
            ).model,
            iris,
        )
    with pytest.raises(IncompatibleData, match="use transformer"):
        build_model(
            RunSpec.model_validate({"dataset": {"name": "x"}, "model": {"name": "mlp"}}).model,
            tokens,
        )


def test_every_model_and_data_set_publishes_a_json_schema_of_its_options() -> None:
    for plugin in [*MODELS, *DATASETS]:
        entry = plugin.catalog_entry()
        assert entry["params"]["type"] == "object", plugin.name
    hidden = MODELS.get("mlp").catalog_entry()["params"]["properties"]["hidden_sizes"]
    assert hidden["type"] == "array" and hidden["default"] == [128, 64]  # factory defaults too


def test_the_catalog_states_each_data_set_as_its_default_params_describe_it() -> None:
    entries = {entry["name"]: entry for entry in dataset_catalog()}
    assert (entries["digits"]["modality"], entries["digits"]["input_shape"]) == ("image", [1, 8, 8])
    assert (entries["sequences"]["modality"], entries["sequences"]["input_shape"]) == (
        "tokens",
        [15],
    )
    assert (entries["diabetes"]["task"], entries["diabetes"]["num_classes"]) == ("regression", None)
    assert entries["spirals"]["num_classes"] == 3
    assert (entries["xor"]["modality"], entries["xor"]["num_classes"]) == ("tabular", 2)  # a plugin


def test_unknown_options_are_rejected_naming_them() -> None:
    with pytest.raises(ValueError, match=r"model.*hidden_size.*Extra inputs"):
        validate_names(
            RunSpec.model_validate(
                {
                    "dataset": {"name": "iris"},
                    "model": {"name": "mlp", "params": {"hidden_size": 3}},
                }
            )
        )
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        validate_names(
            RunSpec.model_validate({"dataset": {"name": "iris"}, "model": {"name": "resnet"}})
        )
    # The builders check the same, whoever calls them.
    with pytest.raises(ValueError, match=r"model.*hidden_size.*Extra inputs"):
        build_model(ModelSpec(name="mlp", params={"hidden_size": 3}), IRIS)


# --- CSV tables


def csv(text: str) -> bytes:
    return text.strip().encode()


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "y", "not UTF-8|binary"),
        (b"", "y", "empty"),
        (csv("a,y"), "y", "no data rows"),
        (csv("a,b\n1,2"), "y", "no column named 'y'"),
        (csv("a,y\n1,0\n2,0\n3,0"), "y", "single class"),
        (csv("a,y\n1,0\nabc,1\n3,0\n4,1"), "y", "column 'a' is numeric but line 3 has 'abc'"),
        (csv("a,y\n1,0,9\n2,1"), "y", "line 2 has 3 fields"),
        (csv("a,a,y\n1,2,0"), "y", "repeats column names: a"),
        (csv("onlyone\n1\n2"), "onlyone", "at least two columns"),
        (csv("a,y\n1,\n2,1\n3,0"), "y", "target column 'y' has 1 empty cells"),
    ],
)
def test_bad_csv_files_get_an_error_naming_the_problem(
    content: bytes, target: str, message: str
) -> None:
    with pytest.raises(TableError, match=message):
        table = read_csv(content, max_columns=50)
        check_target(
            table,
            target,
            infer_task(table.data[target]) if target in table.data else "classification",
        )


def test_too_many_columns_and_too_many_categories_are_refused() -> None:
    wide = ",".join(f"c{i}" for i in range(60)) + "\n" + ",".join("1" for _ in range(60))
    with pytest.raises(TableError, match="60 columns; at most 50"):
        read_csv(wide.encode(), max_columns=50)
    rows = "\n".join(f"id{i},{i % 2}" for i in range(150))
    table = read_csv(f"name,y\n{rows}".encode(), max_columns=50)
    with pytest.raises(TableError, match="150 distinct text values"):
        check_target(table, "y", "classification")


def test_task_is_inferred_from_the_target() -> None:
    assert infer_task(np.array([0.0, 1.0, 2.0, 1.0])) == "classification"
    assert infer_task(np.array(["cat", "dog"], dtype=object)) == "classification"
    assert infer_task(np.array([0.5, 1.25, 3.0])) == "regression"
    assert infer_task(np.arange(100, dtype=float)) == "regression"


# --- plugins


def test_an_installed_plugin_adds_a_data_set_and_a_model_that_train(tmp_path: Path) -> None:
    assert "xor" in DATASETS and "tiny_mlp" in MODELS
    result = fit(tmp_path, "xor", "tiny_mlp", 30, optimizer={"lr": 1e-2})
    assert result["val_accuracy"] > 0.85
