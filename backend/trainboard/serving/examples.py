"""Raw rows to check an export on: the run's own validation split where its data can still be
loaded, else rows drawn from the statistics the preprocessing kept."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from trainboard.inference import TrainedModel
from trainboard.training.data import prepare_data
from trainboard.training.data.catalog import load_raw
from trainboard.training.spec import RunSpec

log = logging.getLogger("trainboard")
MAX_ROWS = 64


def validation_rows(
    model: TrainedModel, spec: RunSpec, *, uploads_dir: Path | None, rows: int = MAX_ROWS
) -> Any:
    """Up to `rows` raw validation rows of the run's data set (the same seeded split), as
    `predict` takes them: an array, or a dict of columns for an uploaded CSV."""
    try:
        raw = load_raw(spec.dataset.name, spec.dataset.params, uploads_dir=uploads_dir)
        index = prepare_data(spec.dataset, seed=spec.seed, raw=raw).val_index
    except Exception as exc:  # deleted upload, changed plugin: any failure means "not here"
        log.info("validation rows of %s unavailable (%s); using drawn rows", spec.dataset, exc)
        return drawn_rows(model, rows)
    assert index is not None
    index = index[:rows]
    if isinstance(raw.features, dict):
        return {name: np.asarray(values)[index] for name, values in raw.features.items()}
    return np.asarray(raw.features)[index]


def drawn_rows(model: TrainedModel, rows: int) -> Any:
    """Rows drawn around the training statistics the preprocessing kept (seeded)."""
    prep, rng = model.preprocessing, np.random.default_rng(0)
    kind = prep["kind"]
    if kind == "tokens":
        length = model.info.input_shape[0]
        return rng.integers(0, prep["vocab_size"] or 2, size=(rows, length))
    if kind == "image":
        size = int(np.prod(prep["shape"]))
        return (rng.random((rows, size)) / prep["scale"]).astype(np.float32)
    if kind == "standardize":
        mean, scale = prep["mean"].numpy(), prep["scale"].numpy()
        return (mean + scale * rng.standard_normal((rows, len(mean)))).astype(np.float32)
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(prep["numeric"]):
        mean, scale = float(prep["mean"][i]), float(prep["scale"][i])
        columns[name] = mean + scale * rng.standard_normal(rows)
    for name, categories in zip(prep["categorical"], prep.get("categories", []), strict=True):
        columns[name] = np.asarray(rng.choice(categories, size=rows), dtype=object)
    return columns
