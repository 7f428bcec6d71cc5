"""The data sets: scikit-learn's bundled ones, seeded generated ones, and uploaded CSVs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn import datasets as skdata

from trainboard.training.data.bundle import RawData
from trainboard.training.data.tables import read_csv
from trainboard.training.registry import NoParams, Plugin, Registry

DATASETS = Registry("dataset", "trainboard.datasets")
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


def _tabular_info(n_features: int, classes: int | None) -> dict[str, Any]:
    return {
        "task": "classification" if classes else "regression",
        "input_shape": [n_features],
        "num_classes": classes,
    }


for name, loader, desc, info in [
    ("iris", skdata.load_iris, "150 iris flowers, 4 measurements, 3 species", _tabular_info(4, 3)),
    (
        "wine",
        skdata.load_wine,
        "178 wines, 13 chemical measurements, 3 cultivars",
        _tabular_info(13, 3),
    ),
    (
        "breast_cancer",
        skdata.load_breast_cancer,
        "569 tumours, 30 features, malignant or benign",
        _tabular_info(30, 2),
    ),
    (
        "diabetes",
        skdata.load_diabetes,
        "442 patients, 10 features, disease progression",
        _tabular_info(10, None),
    ),
]:
    DATASETS.add(Plugin(name, desc, _bundled(loader), NoParams, info))

DATASETS.add(
    Plugin(
        "digits",
        "1797 handwritten digits as 1x8x8 images, 10 classes",
        _digits,
        NoParams,
        {"task": "classification", "input_shape": [1, 8, 8], "num_classes": 10},
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


def _regression(p: dict[str, Any]) -> RawData:
    if p["nonlinear"]:
        x, y = skdata.make_friedman1(
            p["n_samples"],
            n_features=max(5, p["n_features"]),
            noise=p["noise"],
            random_state=p["seed"],
        )
    else:
        x, y = skdata.make_regression(
            p["n_samples"], n_features=p["n_features"], noise=p["noise"], random_state=p["seed"]
        )
        y = y / np.std(y)
    return RawData(x.astype(np.float32), y.astype(np.float32), "regression")


def sequence_length(params: dict[str, Any]) -> int:
    """The token count of a `sequences` example: majority needs an odd length (no ties)."""
    return params["length"] | 1 if params["rule"] == "majority" else params["length"]


def _sequences(p: dict[str, Any]) -> RawData:
    rng = np.random.default_rng(p["seed"])
    length = sequence_length(p)
    tokens = rng.integers(0, 2, size=(p["n_samples"], length))
    if p["rule"] == "majority":
        labels = (tokens.sum(axis=1) * 2 > length).astype(np.int64)
    else:
        labels = (tokens.sum(axis=1) % 2).astype(np.int64)
    return RawData(
        tokens, labels, "classification", modality="tokens", classes=["0", "1"], vocab_size=2
    )


for plugin in [
    Plugin(
        "moons",
        "two interleaving half circles (generated)",
        _moons,
        ShapesOptions,
        _tabular_info(2, 2),
    ),
    Plugin(
        "circles",
        "a circle inside a circle (generated)",
        _circles,
        ShapesOptions,
        _tabular_info(2, 2),
    ),
    Plugin(
        "spirals",
        "interleaved spiral arms, one class each (generated)",
        _spirals,
        SpiralOptions,
        _tabular_info(2, 3),
    ),
    Plugin(
        "regression",
        "noisy linear or Friedman #1 regression (generated)",
        _regression,
        RegressionOptions,
        _tabular_info(10, None),
    ),
    Plugin(
        "sequences",
        "binary token sequences labelled by majority or parity (generated, for transformers)",
        _sequences,
        SequenceOptions,
        {"task": "classification", "input_shape": [15], "num_classes": 2, "modality": "tokens"},
    ),
]:
    DATASETS.add(plugin)


# ---------------------------------------------------------------------------------------------
# Uploaded CSVs: `<uploads>/<name>.csv` and `<name>.json` (target, task), written by the API.


def upload_paths(uploads_dir: Path, name: str) -> tuple[Path, Path]:
    if not UPLOAD_NAME.match(name):
        raise ValueError(f"invalid data set name {name!r}")
    return uploads_dir / f"{name}.csv", uploads_dir / f"{name}.json"


def load_upload(uploads_dir: Path, name: str, *, max_columns: int = 10_000) -> RawData:
    csv_path, meta_path = upload_paths(uploads_dir, name)
    meta = json.loads(meta_path.read_text())
    table = read_csv(csv_path.read_bytes(), max_columns=max_columns)
    target = table.data[meta["target"]]
    features = [c for c in table.columns if c != meta["target"]]
    columns = {c: table.data[c] for c in features}
    if meta["task"] == "classification":
        classes, encoded = np.unique(target.astype(str), return_inverse=True)
        return RawData(
            columns,
            encoded.astype(np.int64),
            "classification",
            classes=[str(c) for c in classes],  # plain str: checkpoints load weights_only
            columns=features,
        )
    return RawData(columns, target.astype(np.float32), "regression", columns=features)


def load_raw(name: str, params: dict[str, Any], *, uploads_dir: Path | None) -> RawData:
    """The raw data of a registered or uploaded data set."""
    if name in DATASETS:
        return DATASETS.get(name).factory(DATASETS.validate_params(name, params))
    if (
        uploads_dir is not None
        and UPLOAD_NAME.match(name)
        and (uploads_dir / f"{name}.json").exists()
    ):
        if params:
            raise ValueError("uploaded data sets take no params")
        return load_upload(uploads_dir, name)
    raise ValueError(f"unknown dataset {name!r}")


def dataset_catalog(uploads: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Catalog entries of every registered data set, then the uploaded ones."""
    entries = []
    for plugin in DATASETS:
        entry = plugin.catalog_entry()
        entry.setdefault(
            "modality", "image" if len(entry.get("input_shape", [])) == 3 else "tabular"
        )
        entries.append(entry)
    return entries + list(uploads or [])
