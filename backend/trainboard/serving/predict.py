"""Predictions for raw rows: `trainboard.load_model(...).predict` as JSON-ready lists."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainboard.inference import TrainedModel
from trainboard.serving.inputs import parse_inputs


def predict_rows(model: TrainedModel, inputs: Any, *, max_rows: int) -> dict[str, Any]:
    """`{"predictions": [...]}`, and `"probabilities"` for classification; InputProblem for
    rows the model cannot take. One forward pass: the labels are the probabilities' argmax,
    as `TrainedModel.predict` takes the logits'."""
    raw = parse_inputs(model, inputs, max_rows=max_rows)
    if model.info.task != "classification":
        return {"predictions": _plain(model.predict(raw))}
    with torch.inference_mode():
        probabilities = model.predict_proba(raw)
    index = probabilities.argmax(axis=1)
    classes = model.info.classes
    named = classes and model.preprocessing.get("kind") == "columns"
    labels = np.asarray(classes)[index] if named else index
    return {"predictions": _plain(labels), "probabilities": _plain(probabilities)}


def _plain(values: np.ndarray) -> list[Any]:
    """Python numbers and strings; a non-finite float (a diverged model's) as None."""
    if values.dtype.kind == "f":
        return np.where(np.isfinite(values), values, None).tolist()
    return values.tolist()
