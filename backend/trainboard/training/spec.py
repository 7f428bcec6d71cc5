"""RunSpec: what a run is, with the defaults and bounds of the API contract, as plain data.

Names (of a model, an optimizer, ...) are only checked for their form here: whether they name
something registered, and whether its params suit it, is `training.runnable`'s question."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainboard.jsonsafe import JsonObject, NoNul

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
# User text: runs' names, notes and tags (external runs and edits use the same types).
RunName = Annotated[str, Field(max_length=200), NoNul()]
RunNotes = Annotated[str, Field(max_length=10_000), NoNul()]
RunTag = Annotated[str, Field(min_length=1, max_length=64), NoNul()]
MAX_DEVICES = 64  # devices of one machine a run may train on


class SpecModel(BaseModel):
    # Finite numbers only: NaN fails every bound with a misleading message ("must be <= 10")
    # and SQLite would store Infinity as null.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DatasetSpec(SpecModel):
    name: Name
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    params: JsonObject = Field(default_factory=dict)


class ModelSpec(SpecModel):
    name: Name
    params: JsonObject = Field(default_factory=dict)


class ParamGroupSpec(SpecModel):
    """Parameters whose qualified name matches `match` (fnmatch pattern) get their own settings."""

    match: Annotated[str, Field(min_length=1, max_length=200), NoNul()]
    lr_scale: float = Field(default=1.0, gt=0, le=1e4)
    weight_decay: float | None = Field(default=None, ge=0, le=10)


class OptimizerSpec(SpecModel):
    name: Name = "adamw"
    lr: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(default=0.01, ge=0, le=10)
    # Biases and normalization weights are usually better left undecayed.
    no_decay_bias_norm: bool = False
    params: JsonObject = Field(default_factory=dict)
    param_groups: list[ParamGroupSpec] = Field(default_factory=list, max_length=32)


class SchedulerSpec(SpecModel):
    name: Name = "none"
    params: JsonObject = Field(default_factory=dict)
    warmup_epochs: int = Field(default=0, ge=0, le=10_000)


MonitorName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_./\-]+$")]


class CheckpointSpec(SpecModel):
    every_epochs: int = Field(default=1, ge=0, le=100_000)  # 0: only the final epoch
    keep_last: int = Field(default=2, ge=1, le=1000)
    keep_best: int = Field(default=1, ge=0, le=1000)
    monitor: MonitorName = "val_loss"
    mode: Literal["min", "max"] = "min"


class EarlyStoppingSpec(SpecModel):
    monitor: MonitorName = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(default=3, ge=1, le=10_000)
    min_delta: float = Field(default=0.0, ge=0)


class RunSpec(SpecModel):
    name: RunName = ""
    tags: list[RunTag] = Field(default_factory=list, max_length=50)
    notes: RunNotes = ""
    dataset: DatasetSpec
    model: ModelSpec
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    loss: Literal["auto", "cross_entropy", "mse", "huber"] = "auto"
    epochs: int = Field(default=10, ge=1, le=100_000)
    batch_size: int = Field(default=64, ge=1, le=1_000_000)
    grad_clip_norm: float | None = Field(default=1.0, gt=0)
    amp: Literal["off", "auto", "bf16", "fp16"] = "off"
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    deterministic: bool = False
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d{1,2})?)$")
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    early_stopping: EarlyStoppingSpec | None = None
    # Train on this many fixed batches only: the sanity check that a model can overfit.
    overfit_batches: int = Field(default=0, ge=0, le=100_000)
    log_every_steps: int = Field(default=10, ge=1, le=1_000_000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    max_retries: int = Field(default=1, ge=0, le=10)
    # Processes of one worker machine that train it together (torch.distributed), one per device.
    devices: int = Field(default=1, ge=1, le=MAX_DEVICES)

    def display_name(self) -> str:
        return self.name or f"{self.model.name}-{self.dataset.name}-{self.optimizer.name}"


def default_spec() -> dict[str, Any]:
    """The catalog's `defaults`: a spec for the default data set and model, every field set;
    plugin params are left out, so each is its default (the catalog states those)."""
    return RunSpec(dataset=DatasetSpec(name="digits"), model=ModelSpec(name="mlp")).model_dump()


def spec_paths(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a spec into dotted paths (``optimizer.lr``), for diffs and sweeps."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(spec_paths(value, f"{path}."))
        else:
            flat[path] = value
    return flat


_SAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def safe_name(text: str) -> str:
    """A name made safe for use as a file stem."""
    return _SAFE.sub("-", text).strip("-.")[:64] or "run"
