"""The data sets: scikit-learn's bundled ones, seeded generated ones, and uploaded CSVs. Each
says what a model needs to know of it (its DataInfo) from its params alone, without loading it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn import datasets as skdata

from trainboard.training.data.types import DataInfo, RawData
from trainboard.training.data.uploads import has_upload, load_upload
from trainboard.training.registry import Plugin, Registry

DATASETS = Registry("dataset", "trainboard.datasets")

Describe = Callable[[dict[str, Any]], DataInfo]


@dataclass(frozen=True)
class DatasetPlugin(Plugin):
    """A data set that says what its data will be for given (validated) params without loading
    it. A plain Plugin may state the same as fixed catalog facts instead: `task`,
    `input_shape`, `num_classes`, `modality`, `vocab_size`."""

    describe: Describe = field(kw_only=True)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _table(n_features: int, classes: int | None) -> DataInfo:
    """A table of `n_features` numbers; `classes` None for a regression target."""
    if classes is None:
        return DataInfo("regression", "tabular", (n_features,), 1)
    return DataInfo("classification", "tabular", (n_features,), classes)


def _fixed_table(n_features: int, classes: int | None) -> Describe:
    return lambda _params: _table(n_features, classes)


def _bundled(loader: Any) -> Any:
    def load(_params: dict[str, Any]) -> RawData:
        bunch = loader()
        classes = [str(c) for c in getattr(bunch, "target_names", [])] or None
        task = "classification" if classes else "regression"
        target = bunch.target.astype(np.int64 if classes else np.float32)
        return RawData(bunch.data.astype(np.float32), target, task, classes=classes)

    return load


def _digits(_params: dict[str, Any]) -> RawData:
    bunch = skdata.load_digits()
    # Pixels are 0..16; scaled to 0..1 and served as 1x8x8 images so a CNN can take them.
    return RawData(
        bunch.data.astype(np.float32),
        bunch.target.astype(np.int64),
        "classification",
        modality="image",
        classes=[str(c) for c in bunch.target_names],
        image_shape=(1, 8, 8),
        image_scale=1 / 16,
    )


for name, loader, description, n_features, classes in [
    ("iris", skdata.load_iris, "150 iris flowers, 4 measurements, 3 species", 4, 3),
    ("wine", skdata.load_wine, "178 wines, 13 chemical measurements, 3 cultivars", 13, 3),
    (
        "breast_cancer",
        skdata.load_breast_cancer,
        "569 tumours, 30 features, malignant or benign",
        30,
        2,
    ),
    ("diabetes", skdata.load_diabetes, "442 patients, 10 features, disease progression", 10, None),
]:
    DATASETS.add(
        DatasetPlugin(
            name, description, _bundled(loader), describe=_fixed_table(n_features, classes)
        )
    )

DATASETS.add(
    DatasetPlugin(
        "digits",
        "1797 handwritten digits as 1x8x8 images, 10 classes",
        _digits,
        describe=lambda _params: DataInfo("classification", "image", (1, 8, 8), 10),
    )
)


class ShapesOptions(Options):
    n_samples: int = Field(default=1000, ge=20, le=1_000_000)
    noise: float = Field(default=0.2, ge=0, le=10)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


class SpiralOptions(ShapesOptions):
    n_classes: int = Field(default=3, ge=2, le=20)


class RegressionOptions(Options):
    n_samples: int = Field(default=1000, ge=20, le=1_000_000)
    n_features: int = Field(default=10, ge=1, le=1000)
    noise: float = Field(default=0.1, ge=0, le=100)
    nonlinear: bool = False
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


class SequenceOptions(Options):
    rule: str = Field(default="majority", pattern="^(majority|parity)$")
    length: int = Field(default=15, ge=2, le=512)
    n_samples: int = Field(default=2000, ge=20, le=1_000_000)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


def _moons(p: dict[str, Any]) -> RawData:
    x, y = skdata.make_moons(p["n_samples"], noise=p["noise"], random_state=p["seed"])
    return RawData(x.astype(np.float32), y.astype(np.int64), "classification", classes=["0", "1"])


def _circles(p: dict[str, Any]) -> RawData:
    x, y = skdata.make_circles(p["n_samples"], noise=p["noise"], factor=0.5, random_state=p["seed"])
    return RawData(x.astype(np.float32), y.astype(np.int64), "classification", classes=["0", "1"])


def _spirals(p: dict[str, Any]) -> RawData:
    rng = np.random.default_rng(p["seed"])
    k, n = p["n_classes"], p["n_samples"]
    labels = np.arange(n) % k
    radius = rng.uniform(0.05, 1.0, n)
    angle = labels * 2 * np.pi / k + radius * 3 * np.pi + rng.normal(0, p["noise"] * 0.5, n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return RawData(
        x.astype(np.float32),
        labels.astype(np.int64),
        "classification",
        classes=[str(c) for c in range(k)],
    )


def _regression_features(p: dict[str, Any]) -> int:
    """Friedman #1 needs at least five features: the first five make its target."""
    return max(5, p["n_features"]) if p["nonlinear"] else p["n_features"]


def _regression(p: dict[str, Any]) -> RawData:
    if p["nonlinear"]:
        x, y = skdata.make_friedman1(
            p["n_samples"],
            n_features=_regression_features(p),
            noise=p["noise"],
            random_state=p["seed"],
        )
    else:
        x, y = skdata.make_regression(
            p["n_samples"], n_features=p["n_features"], noise=p["noise"], random_state=p["seed"]
        )
        y = y / np.std(y)
    return RawData(x.astype(np.float32), y.astype(np.float32), "regression")


def _sequence_length(p: dict[str, Any]) -> int:
    """The token count of a `sequences` example: majority needs an odd length (no ties)."""
    return p["length"] | 1 if p["rule"] == "majority" else p["length"]


def _sequences(p: dict[str, Any]) -> RawData:
    rng = np.random.default_rng(p["seed"])
    length = _sequence_length(p)
    tokens = rng.integers(0, 2, size=(p["n_samples"], length))
    if p["rule"] == "majority":
        labels = (tokens.sum(axis=1) * 2 > length).astype(np.int64)
    else:
        labels = (tokens.sum(axis=1) % 2).astype(np.int64)
    return RawData(
        tokens, labels, "classification", modality="tokens", classes=["0", "1"], vocab_size=2
    )


for plugin in [
    DatasetPlugin(
        "moons",
        "two interleaving half circles (generated)",
        _moons,
        ShapesOptions,
        describe=_fixed_table(2, 2),
    ),
    DatasetPlugin(
        "circles",
        "a circle inside a circle (generated)",
        _circles,
        ShapesOptions,
        describe=_fixed_table(2, 2),
    ),
    DatasetPlugin(
        "spirals",
        "interleaved spiral arms, one class each (generated)",
        _spirals,
        SpiralOptions,
        describe=lambda p: _table(2, p["n_classes"]),
    ),
    DatasetPlugin(
        "regression",
        "noisy linear or Friedman #1 regression (generated)",
        _regression,
        RegressionOptions,
        describe=lambda p: _table(_regression_features(p), None),
    ),
    DatasetPlugin(
        "sequences",
        "binary token sequences labelled by majority or parity (generated, for transformers)",
        _sequences,
        SequenceOptions,
        describe=lambda p: DataInfo(
            "classification", "tokens", (_sequence_length(p),), 2, vocab_size=2
        ),
    ),
]:
    DATASETS.add(plugin)


def load_raw(name: str, params: dict[str, Any], *, uploads_dir: Path | None) -> RawData:
    """The raw data of a registered or uploaded data set."""
    if name in DATASETS:
        return DATASETS.get(name).factory(DATASETS.validate_params(name, params))
    if uploads_dir is not None and has_upload(uploads_dir, name):
        if params:
            raise ValueError("uploaded data sets take no params")
        return load_upload(uploads_dir, name)
    raise ValueError(f"unknown dataset {name!r}")


def _from_facts(facts: dict[str, Any]) -> DataInfo | None:
    """A plain Plugin's catalog facts as a DataInfo; None where it states no task or shape.
    Unstated classes count two, the fewest a target has: a model checked on these is never
    larger than the one its run builds."""
    task, shape = facts.get("task"), facts.get("input_shape")
    if task not in ("classification", "regression") or not shape:
        return None
    modality = facts.get("modality") or ("image" if len(shape) == 3 else "tabular")
    outputs = (facts.get("num_classes") or 2) if task == "classification" else 1
    return DataInfo(task, modality, tuple(shape), outputs, vocab_size=facts.get("vocab_size"))


def _describe(plugin: Plugin, params: dict[str, Any]) -> DataInfo | None:
    if isinstance(plugin, DatasetPlugin):
        return plugin.describe(params)
    return _from_facts(plugin.info)


def describe(name: str, params: dict[str, Any]) -> DataInfo | None:
    """What a model needs to know of registered data set `name` with `params`, said without
    loading it; ValueError for an unknown name or bad params, None for a plugin that states
    nothing of its data (its run finds out when it loads it)."""
    plugin = DATASETS.get(name)
    return _describe(plugin, DATASETS.validate_params(name, params))


def dataset_catalog(uploads: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Catalog entries of every registered data set, with the facts of its default params,
    then the uploaded ones."""
    entries = []
    for plugin in DATASETS:
        entry = plugin.catalog_entry()
        try:
            info = _describe(plugin, plugin.default_params())
        except (KeyError, TypeError, ValueError):  # a plugin option with no default
            info = None
        if info:
            entry |= {
                "task": info.task,
                "modality": info.modality,
                "input_shape": list(info.input_shape),
                "num_classes": info.num_outputs if info.task == "classification" else None,
            }
        entries.append(entry)
    return entries + list(uploads or [])
