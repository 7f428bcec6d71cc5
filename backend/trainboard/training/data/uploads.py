"""Uploaded CSVs: `<uploads>/<name>.csv` and `<name>.json` (target, task), written by the API;
read back as raw data, or described from the facts stored with them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from trainboard.training.data.tables import read_csv
from trainboard.training.data.types import DataInfo, RawData

UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def upload_paths(uploads_dir: Path, name: str) -> tuple[Path, Path]:
    """The CSV file and the JSON facts of upload `name`."""
    if not UPLOAD_NAME.match(name):
        raise ValueError(f"invalid data set name {name!r}")
    return uploads_dir / f"{name}.csv", uploads_dir / f"{name}.json"


def has_upload(uploads_dir: Path, name: str) -> bool:
    """Whether `name` is an uploaded data set in `uploads_dir`."""
    return bool(UPLOAD_NAME.match(name)) and (uploads_dir / f"{name}.json").exists()


def load_upload(uploads_dir: Path, name: str, *, max_columns: int = 10_000) -> RawData:
    """Upload `name`'s feature columns and its target, classes encoded in sorted order."""
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


def upload_info(task: str, n_columns: int, classes: int | None = None) -> DataInfo:
    """What a model needs to know of an uploaded CSV, from the facts stored with it (the file
    is not read): `n_columns` feature columns, each at least one input (a text column becomes
    one per category once encoded), and `classes`, or where not stored two, the fewest a
    target has. So the model checked is never larger than the one the run will build."""
    if task == "classification":
        return DataInfo("classification", "tabular", (n_columns,), classes or 2)
    return DataInfo("regression", "tabular", (n_columns,), 1)
