"""Models: built-ins (mlp, cnn, transformer, linear) and plugins, each adapting to the data."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from trainboard.training.data.types import DataInfo
from trainboard.training.registry import Plugin, Registry
from trainboard.training.spec import ModelSpec

MODELS = Registry("model", "trainboard.models")


class IncompatibleData(ValueError):
    """The model cannot take this data set."""


class ModelTooLarge(ValueError):
    """The model has more parameters than allowed."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"the model has {count:,} parameters; at most {limit:,} are allowed "
            "(TRAINBOARD_MAX_MODEL_PARAMETERS): make it smaller"
        )
        self.count, self.limit = count, limit


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Bounds on single options, so no one value asks for an absurd layer by itself; the model as a
# whole is bounded by its parameter count (check_model_size).
MAX_WIDTH = 65_536
MAX_CHANNELS = 4_096


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


class MLPOptions(Options):
    hidden_sizes: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        default_factory=lambda: [128, 64], max_length=16
    )
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    dropout: float = Field(default=0.1, ge=0, lt=1)
    batch_norm: bool = False


def _flat_size(info: DataInfo, model: str) -> int:
    if info.modality == "tokens":
        raise IncompatibleData(
            f"{model} takes numeric features; use transformer for token sequences"
        )
    return math.prod(info.input_shape)


def _mlp(o: dict, info: DataInfo) -> nn.Module:
    width = _flat_size(info, "mlp")
    layers: list[nn.Module] = [nn.Flatten()]
    for size in o["hidden_sizes"]:
        layers.append(nn.Linear(width, size))
        if o["batch_norm"]:
            layers.append(nn.BatchNorm1d(size))
        layers.append(ACTIVATIONS[o["activation"]]())
        if o["dropout"]:
            layers.append(nn.Dropout(o["dropout"]))
        width = size
    body = nn.Sequential(*layers)
    return Classifier(body, nn.Linear(width, info.num_outputs))


class Classifier(nn.Module):
    """A feature extractor and a head named `classifier` (param groups can single it out)."""

    def __init__(self, features: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CNNOptions(Options):
    channels: list[Annotated[int, Field(ge=1, le=MAX_CHANNELS)]] = Field(
        default_factory=lambda: [32, 64], min_length=1, max_length=6
    )
    kernel_size: int = Field(default=3, ge=1, le=7)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    batch_norm: bool = True


def _cnn(o: dict, info: DataInfo) -> nn.Module:
    if info.modality != "image" or len(info.input_shape) != 3:
        raise IncompatibleData(
            f"cnn needs image data (channels x height x width); this data set has input shape "
            f"{list(info.input_shape)}: use mlp or linear"
        )
    in_ch, height, width = info.input_shape
    layers: list[nn.Module] = []
    for i, out_ch in enumerate(o["channels"]):
        layers.append(nn.Conv2d(in_ch, out_ch, o["kernel_size"], padding=o["kernel_size"] // 2))
        if o["batch_norm"]:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU())
        # Halve the resolution while it stays at least 2x2, keeping the last block's size.
        if min(height, width) >= 4 and i < len(o["channels"]) - 1:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if o["dropout"]:
        layers.append(nn.Dropout(o["dropout"]))
    return Classifier(nn.Sequential(*layers), nn.Linear(in_ch, info.num_outputs))


class TransformerOptions(Options):
    layers: int = Field(default=2, ge=1, le=24)
    heads: int = Field(default=4, ge=1, le=32)
    width: int = Field(default=64, ge=8, le=2048)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    positional: Literal["learned", "sinusoidal"] = "learned"


class TokenTransformer(nn.Module):
    """A small encoder over token sequences; mean-pooled into a classification head."""

    def __init__(self, o: dict, info: DataInfo) -> None:
        super().__init__()
        length, width = info.input_shape[0], o["width"]
        self.embed = nn.Embedding(info.vocab_size or 2, width)
        if o["positional"] == "learned":
            self.position = nn.Parameter(torch.randn(1, length, width) * 0.02)
        else:
            pos = torch.arange(length).unsqueeze(1)
            freq = torch.exp(torch.arange(0, width, 2) * (-math.log(10_000.0) / width))
            table = torch.zeros(1, length, width)
            table[0, :, 0::2] = torch.sin(pos * freq)
            table[0, :, 1::2] = torch.cos(pos * freq[: width // 2])
            self.register_buffer("position", table)
        layer = nn.TransformerEncoderLayer(
            width, o["heads"], 4 * width, o["dropout"], batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, o["layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, info.num_outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens) + self.position)
        return self.classifier(self.norm(h.mean(dim=1)))


def _transformer(o: dict, info: DataInfo) -> nn.Module:
    if info.modality != "tokens":
        raise IncompatibleData("transformer needs a token-sequence data set such as sequences")
    if o["width"] % o["heads"]:
        raise IncompatibleData(
            f"transformer width {o['width']} is not divisible by heads {o['heads']}"
        )
    return TokenTransformer(o, info)


def _linear(_o: dict, info: DataInfo) -> nn.Module:
    return Classifier(nn.Flatten(), nn.Linear(_flat_size(info, "linear"), info.num_outputs))


MODELS.add(Plugin("mlp", "multi-layer perceptron", _mlp, MLPOptions))
MODELS.add(Plugin("cnn", "small convolutional net for images", _cnn, CNNOptions))
MODELS.add(
    Plugin(
        "transformer",
        "small transformer encoder for token sequences",
        _transformer,
        TransformerOptions,
    )
)
MODELS.add(Plugin("linear", "logistic / linear regression baseline", _linear))


def build_model(spec: ModelSpec, info: DataInfo, *, max_parameters: int | None = None) -> nn.Module:
    """The model `spec` names, sized for `info`; ValueError for an unknown name or bad params,
    IncompatibleData when it cannot take the data, ModelTooLarge (before any memory is taken)
    when it has more than `max_parameters`."""
    if max_parameters is not None:
        check_model_size(spec, info, max_parameters=max_parameters)
    return MODELS.get(spec.name).factory(MODELS.validate_params(spec.name, spec.params), info)


def model_outline(spec: ModelSpec, info: DataInfo) -> nn.Module:
    """The model built on the meta device: every parameter's name and shape, no memory, no
    time, whatever its size. Errors as build_model's."""
    with torch.device("meta"):
        return build_model(spec, info)


def check_model_size(spec: ModelSpec, info: DataInfo, *, max_parameters: int) -> nn.Module:
    """The model's outline, if it has at most `max_parameters` parameters; ModelTooLarge
    naming the count and the limit otherwise. The one size check: the API runs it on every
    submitted spec, load_model and build_model(max_parameters=...) before building."""
    outline = model_outline(spec, info)
    count = sum(p.numel() for p in outline.parameters())
    if count > max_parameters:
        raise ModelTooLarge(count, max_parameters)
    return outline


LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "huber": nn.HuberLoss,
}


def loss_name(task: str, choice: str) -> str:
    """The loss `choice` means for `task` ("auto": cross-entropy for classification, MSE for
    regression); IncompatibleData when it does not fit the task."""
    if choice == "auto":
        choice = "cross_entropy" if task == "classification" else "mse"
    if (choice == "cross_entropy") != (task == "classification"):
        raise IncompatibleData(f"loss {choice!r} does not fit a {task} task")
    return choice


def build_loss(task: str, choice: str) -> nn.Module:
    """Cross-entropy for classification, MSE (or Huber) for regression."""
    return LOSSES[loss_name(task, choice)]()
