"""The graph an export holds: the trained network with its numeric preprocessing folded in.

An exported model takes raw numbers, as the data set has them, and gives what `predict` reads:

    raw numbers ─ input (scale, reshape / standardize / impute + one-hot) ─ net ─ output

- digits and other images: the raw pixel values, one flat row each (digits: 64 values, 0 to 16);
- tabular data sets: the raw feature values;
- uploaded CSVs: the numeric columns' raw values (NaN for a missing one, imputed in the graph),
  then one number per text column: the index of its category in the metadata's list (-1 for
  one never seen in training, which encodes as all zeros, as in training);
- token sequences: the token ids (int64).

Outputs are logits for classification (softmax gives `predict`'s probabilities) and values in
the target's own units for regression. What a client needs to build the input (column order,
categories, class names) travels inside the file as JSON (`describe`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from trainboard.inference import TrainedModel
from trainboard.training.data import preprocess
from trainboard.training.data.tables import as_columns


def _buffer(values: Any) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32).reshape(-1)


class ImageInput(nn.Module):
    """Flat raw pixel rows → scaled images of the training shape."""

    def __init__(self, scale: float, shape: list[int]) -> None:
        super().__init__()
        self.scale, self.shape = float(scale), [-1, *(int(s) for s in shape)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale).reshape(self.shape)


class Standardize(nn.Module):
    """Raw feature rows → (x - mean) / scale, with the training split's statistics."""

    def __init__(self, mean: Any, scale: Any) -> None:
        super().__init__()
        self.register_buffer("mean", _buffer(mean))
        self.register_buffer("scale", _buffer(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class ColumnsInput(nn.Module):
    """An uploaded CSV's encoded row (numeric values, then category indices) → the features
    the network was trained on: missing numbers imputed and standardized, categories one-hot."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__()
        self.n_numeric = len(state["numeric"])
        self.sizes = [len(c) for c in state.get("categories", [])]
        numeric = self.n_numeric > 0
        self.register_buffer("fill", _buffer(state["fill"] if numeric else []))
        self.register_buffer("mean", _buffer(state["mean"] if numeric else []))
        self.register_buffer("scale", _buffer(state["scale"] if numeric else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.n_numeric > 0:
            values = x[:, : self.n_numeric]
            values = torch.where(torch.isnan(values), self.fill, values)
            parts.append((values - self.mean) / self.scale)
        column = self.n_numeric
        for size in self.sizes:
            codes = torch.arange(size, dtype=x.dtype, device=x.device)
            parts.append((x[:, column : column + 1] == codes).to(x.dtype))
            column += 1
        return torch.cat(parts, dim=1)


class TargetScale(nn.Module):
    """Standardized regression outputs → the target's own units."""

    def __init__(self, mean: Any, scale: Any) -> None:
        super().__init__()
        self.register_buffer("mean", _buffer(mean))
        self.register_buffer("scale", _buffer(scale))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale + self.mean


class Servable(nn.Module):
    """input → net → output, in eval mode: the module every format exports."""

    def __init__(self, model: TrainedModel) -> None:
        super().__init__()
        prep = model.preprocessing
        kind = prep["kind"]
        self.input: nn.Module = nn.Identity()
        if kind == "image":
            self.input = ImageInput(prep["scale"], prep["shape"])
        elif kind == "standardize":
            self.input = Standardize(prep["mean"], prep["scale"])
        elif kind == "columns":
            self.input = ColumnsInput(prep)
        self.net = model.net
        target = prep.get("target")
        self.output: nn.Module = nn.Identity()
        if target is not None:
            self.output = TargetScale(target["mean"], target["scale"])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.net(self.input(x)))


def encode(model: TrainedModel, raw: Any) -> torch.Tensor:
    """Raw rows (as `predict` takes them) → the exported graph's input tensor."""
    prep = model.preprocessing
    kind = prep["kind"]
    if kind == "tokens":
        return torch.as_tensor(np.asarray(raw), dtype=torch.long)
    if kind == "columns":
        numeric, categorical = prep["numeric"], prep["categorical"]
        columns = as_columns(raw, numeric + categorical, numeric=numeric)
        parts = [np.asarray(columns[c], dtype=np.float64) for c in numeric]
        for column, categories in zip(categorical, prep.get("categories", []), strict=True):
            lookup = {c: i for i, c in enumerate(categories)}
            parts.append(np.asarray([lookup.get(str(v), -1) for v in columns[column]], float))
        return torch.as_tensor(np.stack(parts, axis=1), dtype=torch.float32)
    x = torch.as_tensor(np.asarray(raw, dtype=np.float32))
    return x.reshape(len(x), -1)


@torch.inference_mode()
def reference_outputs(model: TrainedModel, raw: Any) -> torch.Tensor:
    """What the eager model gives for raw rows, through `trainboard.load_model`'s own path:
    the saved preprocessing, the network, and for regression the target's units."""
    out = model.net(preprocess.apply(model.preprocessing, raw)).float()
    target = model.preprocessing.get("target")
    if target is not None:
        out = (out.double() * target["scale"] + target["mean"]).float()
    return out


def input_width(model: TrainedModel) -> int:
    """The number of values (or token ids) in one row of the graph's input."""
    prep = model.preprocessing
    if prep["kind"] == "columns":
        return len(prep["numeric"]) + len(prep["categorical"])
    return math.prod(model.info.input_shape)


def describe(model: TrainedModel) -> dict[str, Any]:
    """What a client of an exported file needs to know, stored in it as JSON."""
    prep, info = model.preprocessing, model.info
    entry: dict[str, Any] = {
        "shape": ["batch", input_width(model)],
        "dtype": "int64" if prep["kind"] == "tokens" else "float32",
    }
    if prep["kind"] == "columns":
        entry["columns"] = prep["numeric"] + prep["categorical"]
        entry["numeric"] = prep["numeric"]
        entry["categories"] = dict(
            zip(prep["categorical"], prep.get("categories", []), strict=True)
        )
        entry["note"] = (
            "numeric columns as raw numbers (NaN when missing), then each text column as the "
            "index of its value in `categories` (-1 when unseen)"
        )
    elif prep["kind"] == "image":
        entry["note"] = f"raw pixel values, one flat row per image of shape {prep['shape']}"
    elif prep["kind"] == "tokens":
        entry["note"] = f"token ids below {prep['vocab_size']}"
    else:
        entry["note"] = "raw feature values; the standardization is in the graph"
    output = (
        {"kind": "logits", "classes": info.classes or list(range(info.num_outputs))}
        if info.task == "classification"
        else {"kind": "values", "note": "in the target's own units"}
    )
    return {"task": info.task, "input": entry, "output": output}
