"""`load_model(path)`: a checkpoint back as a ready model whose `predict` takes raw inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainboard.config import Settings
from trainboard.training.checkpoint import load_checkpoint
from trainboard.training.data import DataInfo, preprocess
from trainboard.training.models import build_model
from trainboard.training.spec import RunSpec


class TrainedModel(nn.Module):
    """The trained network plus the preprocessing it was trained behind. Its state dict is the
    network's, key for key, so a checkpoint's `model_state_dict` loads into it as it is."""

    def __init__(self, net: nn.Module, info: DataInfo, preprocessing: dict[str, Any]) -> None:
        super().__init__()
        self.net, self.info, self.preprocessing = net, info, preprocessing
        # Holding `net` would put "net." before every key; the wrapper has no state of its own,
        # so the hooks take it off when saving and put it back when loading (nested too).
        self.register_state_dict_post_hook(_drop_net_prefix)
        self.register_load_state_dict_pre_hook(_add_net_prefix)

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


def _rename_keys(state: dict[str, Any], old: str, new: str) -> None:
    """Replace the prefix `old` by `new` in `state`'s keys, in place, keeping their order."""
    for key in [k for k in state if k.startswith(old)]:
        state[new + key.removeprefix(old)] = state.pop(key)


def _drop_net_prefix(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    _rename_keys(state, prefix + "net.", prefix)


def _add_net_prefix(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    _rename_keys(state, prefix, prefix + "net.")


def load_model(
    path: str | Path, device: str = "cpu", *, max_parameters: int | None = None
) -> TrainedModel:
    """Rebuild a checkpoint's model from its spec (plugins included), load weights, eval mode.
    A spec naming a model above `max_parameters` (default: the environment's
    TRAINBOARD_MAX_MODEL_PARAMETERS, as the server's) is a ValueError before anything is built."""
    # Read to the CPU: the preprocessing tensors stay there, beside the raw inputs they
    # transform; only the network moves to `device`.
    state = load_checkpoint(path, map_location="cpu")
    return load_model_state(state, device, max_parameters=max_parameters)


def load_model_state(
    state: dict[str, Any], device: str = "cpu", *, max_parameters: int | None = None
) -> TrainedModel:
    """`load_model` for a checkpoint dict already in memory."""
    missing = [key for key in ("spec", "data_info", "preprocessing") if key not in state]
    if missing:
        # A checkpoint an external run uploaded holds weights, not what rebuilds their model.
        raise ValueError(
            f"the checkpoint has no {', '.join(missing)}, so its model cannot be rebuilt: "
            "load_model reads checkpoints of runs trainboard trained; for others, build the "
            "model yourself and load its model_state_dict"
        )
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
    if max_parameters is None:
        max_parameters = Settings().max_model_parameters
    net = build_model(spec.model, info, max_parameters=max_parameters)
    net.load_state_dict(state["model_state_dict"])
    model = TrainedModel(net, info, state["preprocessing"]).to(device)
    return model.eval()
