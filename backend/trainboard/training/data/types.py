"""What a data set is before and after loading: its raw arrays, and the facts a model needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Task = Literal["classification", "regression"]
Modality = Literal["tabular", "image", "tokens"]


@dataclass
class RawData:
    """What a data set loader returns: features and targets before any fitting."""

    features: Any  # np.ndarray, or a list of rows (str cells) for CSV uploads
    target: np.ndarray
    task: Task
    modality: Modality = "tabular"
    classes: list[str] | None = None
    vocab_size: int | None = None
    image_shape: tuple[int, ...] | None = None
    image_scale: float = 1.0
    columns: list[str] | None = None  # CSV uploads: the raw feature columns


@dataclass
class DataInfo:
    """What a model needs to know to fit the data."""

    task: Task
    modality: Modality
    input_shape: tuple[int, ...]
    num_outputs: int
    classes: list[str] | None = None
    vocab_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "modality": self.modality,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "classes": self.classes,
            "vocab_size": self.vocab_size,
        }
