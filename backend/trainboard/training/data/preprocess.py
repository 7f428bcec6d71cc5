"""Preprocessing fitted with scikit-learn on the train split, kept as plain tensors and lists.

Checkpoints load with ``weights_only=True``, so nothing here may be a pickled object: the fitted
scikit-learn transformers are reduced to their numbers, and `apply` replays them exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler

from trainboard.training.data.tables import as_columns
from trainboard.training.data.types import RawData


def fit(raw: RawData, train_idx: np.ndarray) -> dict[str, Any]:
    """Fit the preprocessing that suits `raw`'s modality on the training rows only."""
    if raw.modality == "tokens":
        return {"kind": "tokens", "vocab_size": raw.vocab_size}
    if raw.modality == "image":
        return {"kind": "image", "scale": float(raw.image_scale), "shape": list(raw.image_shape)}
    if raw.columns is not None:
        return _fit_columns(raw, train_idx)
    scaler = StandardScaler().fit(np.asarray(raw.features, dtype=np.float64)[train_idx])
    return {
        "kind": "standardize",
        "mean": torch.as_tensor(scaler.mean_, dtype=torch.float64),
        "scale": torch.as_tensor(scaler.scale_, dtype=torch.float64),
    }


def _fit_columns(raw: RawData, train_idx: np.ndarray) -> dict[str, Any]:
    # Only an uploaded table needs these; the bundled sets start without their imports.
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    table = raw.features  # dict column -> np.ndarray (float for numeric, object for categorical)
    numeric = [c for c in raw.columns if table[c].dtype.kind == "f"]
    categorical = [c for c in raw.columns if c not in numeric]
    frame = np.empty((len(raw.target), len(raw.columns)), dtype=object)
    for i, column in enumerate(raw.columns):
        frame[:, i] = table[column]
    position = {c: i for i, c in enumerate(raw.columns)}
    transformers = []
    if numeric:
        pipeline = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler())
        transformers.append(("numeric", pipeline, [position[c] for c in numeric]))
    if categorical:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encoder, [position[c] for c in categorical]))
    fitted = ColumnTransformer(transformers).fit(frame[train_idx])
    state: dict[str, Any] = {"kind": "columns", "numeric": [], "categorical": []}
    if numeric:
        imputer, scaler = (
            fitted.named_transformers_["numeric"].steps[0][1],
            fitted.named_transformers_["numeric"].steps[1][1],
        )
        state["numeric"] = numeric
        state["fill"] = torch.as_tensor(imputer.statistics_, dtype=torch.float64)
        state["mean"] = torch.as_tensor(scaler.mean_, dtype=torch.float64)
        state["scale"] = torch.as_tensor(scaler.scale_, dtype=torch.float64)
    if categorical:
        encoder = fitted.named_transformers_["categorical"]
        state["categorical"] = categorical
        state["categories"] = [[str(v) for v in cats] for cats in encoder.categories_]
    state["classes"] = raw.classes
    return state


def apply(state: dict[str, Any], features: Any) -> torch.Tensor:
    """Turn raw features into the model's input tensor, exactly as at training time."""
    kind = state["kind"]
    if kind == "tokens":
        return torch.as_tensor(np.asarray(features), dtype=torch.long)
    if kind == "image":
        x = torch.as_tensor(np.asarray(features, dtype=np.float32)) * state["scale"]
        return x.reshape(-1, *state["shape"])
    if kind == "standardize":
        x = torch.as_tensor(np.asarray(features, dtype=np.float64))
        if x.ndim == 1:
            x = x.unsqueeze(0)
        return ((x - state["mean"]) / state["scale"]).float()
    if kind == "columns":
        return _apply_columns(state, features)
    raise ValueError(f"unknown preprocessing {kind!r}")


def _apply_columns(state: dict[str, Any], table: Any) -> torch.Tensor:
    columns = as_columns(table, state["numeric"] + state["categorical"], numeric=state["numeric"])
    parts: list[torch.Tensor] = []
    if state["numeric"]:
        x = torch.as_tensor(np.stack([columns[c] for c in state["numeric"]], axis=1))
        x = torch.where(torch.isnan(x), state["fill"], x)
        parts.append((x - state["mean"]) / state["scale"])
    for column, categories in zip(state["categorical"], state.get("categories", []), strict=True):
        values = [str(v) for v in columns[column]]
        onehot = torch.zeros(len(values), len(categories), dtype=torch.float64)
        lookup = {c: i for i, c in enumerate(categories)}
        for row, value in enumerate(values):
            if value in lookup:  # unseen categories encode as all zeros, like handle_unknown
                onehot[row, lookup[value]] = 1.0
        parts.append(onehot)
    return torch.cat(parts, dim=1).float()
