"""From a data set's raw arrays to train/val tensors: seeded split, fitted preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

import trainboard.training.data.preprocess as preprocess
from trainboard.training.data.catalog import load_raw
from trainboard.training.data.types import DataInfo, RawData, Task
from trainboard.training.spec import DatasetSpec


@dataclass
class DataBundle:
    """A data set split into train and validation tensors, and the preprocessing fitted."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    info: DataInfo
    preprocessing: dict[str, Any] = field(default_factory=dict)
    val_index: np.ndarray | None = None  # rows of the raw data set that form the validation split


def _split(target: np.ndarray, task: Task, val_fraction: float, seed: int) -> tuple[Any, Any]:
    index = np.arange(len(target))
    stratify = None
    if task == "classification":
        _, counts = np.unique(target, return_counts=True)
        n_val = int(np.ceil(val_fraction * len(target)))
        # Stratifying needs two of each class and room for one of each on both sides.
        if counts.min() >= 2 and len(counts) <= min(n_val, len(target) - n_val):
            stratify = target
    return train_test_split(index, test_size=val_fraction, random_state=seed, stratify=stratify)


def prepare_data(
    spec: DatasetSpec, *, seed: int, uploads_dir: Path | None = None, raw: RawData | None = None
) -> DataBundle:
    """Load `spec`'s data set (or take `raw`), split it (seeded, stratified) and fit
    preprocessing on the train split only."""
    if raw is None:
        raw = load_raw(spec.name, spec.params, uploads_dir=uploads_dir)
    if len(raw.target) < 2:
        raise ValueError(f"data set {spec.name!r} has fewer than 2 rows")
    train_idx, val_idx = _split(raw.target, raw.task, spec.val_fraction, seed)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError("dataset.val_fraction leaves an empty train or validation split")
    prep = preprocess.fit(raw, train_idx)
    x = preprocess.apply(prep, raw.features)
    if raw.task == "classification":
        y = torch.as_tensor(raw.target, dtype=torch.long)
    else:
        # Targets are standardized too (on train only), so losses compare across data sets;
        # `predict` maps outputs back to the original scale.
        target = np.asarray(raw.target, dtype=np.float64).reshape(len(raw.target), -1)
        mean, scale = target[train_idx].mean(axis=0), target[train_idx].std(axis=0)
        scale[scale == 0] = 1.0
        prep["target"] = {"mean": torch.as_tensor(mean), "scale": torch.as_tensor(scale)}
        y = torch.as_tensor((target - mean) / scale, dtype=torch.float32)
    train_t, val_t = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    num_outputs = len(raw.classes) if raw.task == "classification" and raw.classes else 1
    info = DataInfo(
        task=raw.task,
        modality=raw.modality,
        input_shape=tuple(x.shape[1:]),
        num_outputs=num_outputs,
        classes=raw.classes,
        vocab_size=raw.vocab_size,
    )
    return DataBundle(x[train_t], y[train_t], x[val_t], y[val_t], info, prep, val_idx)
