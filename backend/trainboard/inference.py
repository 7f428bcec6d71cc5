"""`load_model(path)`: a checkpoint back as a ready model whose `predict` takes raw inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainboard.training.checkpoint import load_checkpoint
from trainboard.training.data import DataInfo, preprocess
from trainboard.training.models import build_model
from trainboard.training.spec import RunSpec


class TrainedModel(nn.Module):
    """The trained network plus the preprocessing it was trained behind."""

    def __init__(self, net: nn.Module, info: DataInfo, preprocessing: dict[str, Any]) -> None:
        super().__init__()
        self.net, self.info, self.preprocessing = net, info, preprocessing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.inference_mode()
    def _outputs(self, raw: Any) -> torch.Tensor:
        device = next(self.net.parameters()).device
        return self.net(preprocess.apply(self.preprocessing, raw).to(device)).float().cpu()

    def predict(self, raw: Any) -> np.ndarray:
        """Class labels (classification) or values (regression) for raw, unpreprocessed inputs."""
        out = self._outputs(raw)
        if self.info.task == "classification":
            index = out.argmax(dim=1).numpy()
            classes = self.info.classes
            return (
                np.asarray(classes)[index]
                if classes and self.preprocessing.get("kind") == "columns"
                else index
            )
        target = self.preprocessing.get("target")
        if target is not None:
            out = out.double() * target["scale"] + target["mean"]
        return out.squeeze(1).numpy()

    def predict_proba(self, raw: Any) -> np.ndarray:
        return torch.softmax(self._outputs(raw), dim=1).numpy()


def load_model(path: str | Path, device: str = "cpu") -> TrainedModel:
    """Rebuild a checkpoint's model from its spec (plugins included), load weights, eval mode."""
    return load_model_state(load_checkpoint(path, map_location=device), device)


def load_model_state(state: dict[str, Any], device: str = "cpu") -> TrainedModel:
    """`load_model` for a checkpoint dict already in memory."""
    spec = RunSpec.model_validate(state["spec"])
    raw = state["data_info"]
    info = DataInfo(
        task=raw["task"],
        modality=raw["modality"],
        input_shape=tuple(raw["input_shape"]),
        num_outputs=raw["num_outputs"],
        classes=raw["classes"],
        vocab_size=raw["vocab_size"],
    )
    net = build_model(spec.model, info)
    net.load_state_dict(state["model_state_dict"])
    model = TrainedModel(net, info, state["preprocessing"]).to(device)
    return model.eval()
