"""An example plugin: a noisy XOR data set and a two-layer model, declared as entry points."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from trainboard.training.data import RawData
from trainboard.training.models import Classifier
from trainboard.training.registry import Plugin


class XorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_samples: int = Field(default=800, ge=20, le=100_000)
    seed: int = 0


def load_xor(params: dict) -> RawData:
    rng = np.random.default_rng(params["seed"])
    x = rng.uniform(-1, 1, size=(params["n_samples"], 2)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    return RawData(x, y, "classification", classes=["0", "1"])


class TinyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(default=32, ge=2, le=1024)


def build_tiny(params: dict, info) -> nn.Module:
    width = params["width"]
    features = nn.Sequential(
        nn.Flatten(), nn.Linear(int(np.prod(info.input_shape)), width), nn.Tanh()
    )
    return Classifier(features, nn.Linear(width, info.num_outputs))


xor_dataset = Plugin(
    "xor",
    "noisy XOR of two coordinates (example plugin)",
    load_xor,
    XorOptions,
    {"task": "classification", "input_shape": [2], "num_classes": 2},
)
tiny_mlp = Plugin("tiny_mlp", "one hidden tanh layer (example plugin)", build_tiny, TinyOptions)


class Branchy(nn.Module):
    """Flips its logits when their batch mean is negative: control flow on the inputs' values,
    which one exported graph (torch.export, ONNX) cannot hold."""

    def __init__(self, width: int, outputs: int) -> None:
        super().__init__()
        self.layer = nn.Linear(width, outputs)

    def forward(self, x):
        logits = self.layer(x.flatten(1))
        if logits.mean() > 0:
            return logits
        return -logits


def build_branchy(params: dict, info) -> nn.Module:
    return Branchy(int(np.prod(info.input_shape)), info.num_outputs)


branchy = Plugin("branchy", "branches on its inputs' values (example plugin)", build_branchy)
