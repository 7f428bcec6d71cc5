"""Optimizers with parameter groups, and LR schedulers with the moment each one steps."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.optim import lr_scheduler

from trainboard.training.registry import Plugin, Registry
from trainboard.training.spec import OptimizerSpec, SchedulerSpec


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Epoch counts in scheduler options go no further than a run's epochs can.
MAX_EPOCHS = 100_000


class SGDOptions(Options):
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    dampening: float = Field(default=0.0, ge=0, lt=1)


class AdamOptions(Options):
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.999, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0, le=1)
    amsgrad: bool = False


class RMSpropOptions(Options):
    alpha: float = Field(default=0.99, ge=0, lt=1)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0, le=1)
    centered: bool = False


def _sgd(groups: list[dict[str, Any]], lr: float, o: dict[str, Any]) -> torch.optim.Optimizer:
    if o["nesterov"] and (o["momentum"] <= 0 or o["dampening"] != 0):
        raise ValueError("nesterov needs momentum > 0 and dampening 0")
    return torch.optim.SGD(groups, lr=lr, **o)


def _adam_kwargs(o: dict[str, Any]) -> dict[str, Any]:
    return {"betas": (o["beta1"], o["beta2"]), "eps": o["eps"], "amsgrad": o["amsgrad"]}


OPTIMIZERS = Registry("optimizer")
OPTIMIZERS.add(Plugin("sgd", "SGD with momentum and optional Nesterov", _sgd, SGDOptions))
OPTIMIZERS.add(
    Plugin(
        "adam",
        "Adam (weight decay as L2 in the gradient)",
        lambda g, lr, o: torch.optim.Adam(g, lr=lr, **_adam_kwargs(o)),
        AdamOptions,
    )
)
OPTIMIZERS.add(
    Plugin(
        "adamw",
        "AdamW (decoupled weight decay)",
        lambda g, lr, o: torch.optim.AdamW(g, lr=lr, **_adam_kwargs(o)),
        AdamOptions,
    )
)
OPTIMIZERS.add(
    Plugin(
        "rmsprop", "RMSprop", lambda g, lr, o: torch.optim.RMSprop(g, lr=lr, **o), RMSpropOptions
    )
)


class UnmatchedParamGroup(ValueError):
    """A `param_groups` pattern that matches no trainable parameter of the model."""

    def __init__(self, index: int, pattern: str, names: list[str]) -> None:
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        self.index, self.pattern = index, pattern
        self.reason = f"{pattern!r} matches no parameter; this model's are named {shown}"
        super().__init__(f"optimizer.param_groups.{index}.match: {self.reason}")


def check_param_groups(model: nn.Module, spec: OptimizerSpec) -> None:
    """UnmatchedParamGroup for the first `param_groups` pattern that matches no trainable
    parameter name (fnmatch, case-sensitive). The API runs it on the model's outline."""
    names = [name for name, param in model.named_parameters() if param.requires_grad]
    for index, group in enumerate(spec.param_groups):
        if not any(fnmatch.fnmatchcase(name, group.match) for name in names):
            raise UnmatchedParamGroup(index, group.match, names)


def _is_bias_or_norm(name: str, param: nn.Parameter, norm_params: set[int]) -> bool:
    return name.endswith(".bias") or name == "bias" or id(param) in norm_params


def parameter_groups(model: nn.Module, spec: OptimizerSpec) -> list[dict[str, Any]]:
    """Split parameters into groups: the first `param_groups` pattern a name matches wins."""
    norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    norm_params = {
        id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(False)
    }
    buckets: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr_scale, decay = 1.0, spec.weight_decay
        if spec.no_decay_bias_norm and _is_bias_or_norm(name, param, norm_params):
            decay = 0.0
        for group in spec.param_groups:
            if fnmatch.fnmatchcase(name, group.match):
                lr_scale = group.lr_scale
                if group.weight_decay is not None:
                    decay = group.weight_decay
                break
        buckets.setdefault((lr_scale, decay), []).append(param)
    # The group holding the first parameter comes first: its lr is the one reported as `lr`.
    return [
        {"params": params, "lr": spec.lr * scale, "weight_decay": decay}
        for (scale, decay), params in buckets.items()
    ]


def build_optimizer(model: nn.Module, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The optimizer `spec` names over `model`'s parameter groups; ValueError for an unknown
    name, bad params or a param group that matches nothing."""
    options = OPTIMIZERS.validate_params(spec.name, spec.params)
    check_param_groups(model, spec)
    return OPTIMIZERS.get(spec.name).factory(parameter_groups(model, spec), spec.lr, options)


# ---------------------------------------------------------------------------------------------
# Schedulers


class SchedulerCadence(StrEnum):
    epoch = "epoch"  # step() after every epoch
    step = "step"  # step() after every optimizer step
    plateau = "plateau"  # step(val_loss) after every epoch
    never = "never"


class StepOptions(Options):
    step_size: int = Field(default=10, ge=1, le=MAX_EPOCHS)
    gamma: float = Field(default=0.1, gt=0, le=1)


class MultiStepOptions(Options):
    milestones: list[Annotated[int, Field(ge=1, le=MAX_EPOCHS)]] = Field(
        default_factory=lambda: [30, 60], min_length=1, max_length=1_000
    )
    gamma: float = Field(default=0.1, gt=0, le=1)


class ExponentialOptions(Options):
    gamma: float = Field(default=0.95, gt=0, le=1)


class CosineOptions(Options):
    t_max: int | None = Field(
        default=None, ge=1, le=MAX_EPOCHS, description="epochs; default: epochs - warmup"
    )
    eta_min: float = Field(default=0.0, ge=0, le=10)


class OneCycleOptions(Options):
    max_lr: float | None = Field(
        default=None, gt=0, le=10, description="default: the optimizer's lr"
    )
    pct_start: float = Field(default=0.3, gt=0, lt=1)
    anneal_strategy: str = Field(default="cos", pattern="^(cos|linear)$")
    div_factor: float = Field(default=25.0, gt=0, le=1e6)
    final_div_factor: float = Field(default=1e4, gt=0, le=1e12)


class PlateauOptions(Options):
    factor: float = Field(default=0.1, gt=0, lt=1)
    patience: int = Field(default=10, ge=0, le=MAX_EPOCHS)
    threshold: float = Field(default=1e-4, ge=0, le=1e6)
    min_lr: float = Field(default=0.0, ge=0, le=10)


SCHEDULERS = Registry("scheduler")
SCHEDULERS.add(Plugin("none", "constant learning rate", lambda *a: None, info={"cadence": "never"}))
SCHEDULERS.add(Plugin("step", "multiply by gamma every step_size epochs", None, StepOptions))
SCHEDULERS.add(
    Plugin("multistep", "multiply by gamma at each milestone epoch", None, MultiStepOptions)
)
SCHEDULERS.add(Plugin("exponential", "multiply by gamma every epoch", None, ExponentialOptions))
SCHEDULERS.add(
    Plugin("cosine", "cosine annealing to eta_min, optional warmup", None, CosineOptions)
)
SCHEDULERS.add(Plugin("onecycle", "one-cycle policy, stepped every batch", None, OneCycleOptions))
SCHEDULERS.add(Plugin("plateau", "reduce on val_loss plateau", None, PlateauOptions))


# Schedulers that take no warmup, and why.
NO_WARMUP = {"plateau": "", "onecycle": " (onecycle warms up by itself: use params.pct_start)"}


def check_warmup(spec: SchedulerSpec) -> None:
    """ValueError when `spec` asks for warmup epochs that its scheduler cannot follow."""
    if spec.warmup_epochs and spec.name in NO_WARMUP:
        raise ValueError(
            f"warmup_epochs is not supported with the {spec.name!r} scheduler"
            + NO_WARMUP[spec.name]
        )


@dataclass
class Schedule:
    """A scheduler (or none) and when the loop must step it."""

    scheduler: Any
    cadence: SchedulerCadence

    def step_after_batch(self) -> None:
        if self.cadence is SchedulerCadence.step:
            self.scheduler.step()

    def step_after_epoch(self, val_loss: float) -> None:
        if self.cadence is SchedulerCadence.epoch:
            self.scheduler.step()
        elif self.cadence is SchedulerCadence.plateau:
            self.scheduler.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)


def build_schedule(
    optimizer: torch.optim.Optimizer, spec: SchedulerSpec, *, epochs: int, steps_per_epoch: int
) -> Schedule:
    """The scheduler `spec` names, warmup included, and when to step it; ValueError for an
    unknown name, bad params or a warmup it cannot follow."""
    check_warmup(spec)
    o = SCHEDULERS.validate_params(spec.name, spec.params)
    name, warmup = spec.name, spec.warmup_epochs
    main_epochs = max(1, epochs - warmup)
    main: Any
    if name == "none":
        main = lr_scheduler.LambdaLR(optimizer, lambda _: 1.0) if warmup else None
    elif name == "step":
        main = lr_scheduler.StepLR(optimizer, step_size=o["step_size"], gamma=o["gamma"])
    elif name == "multistep":
        main = lr_scheduler.MultiStepLR(optimizer, milestones=o["milestones"], gamma=o["gamma"])
    elif name == "exponential":
        main = lr_scheduler.ExponentialLR(optimizer, gamma=o["gamma"])
    elif name == "cosine":
        t_max = o["t_max"] or main_epochs
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=o["eta_min"])
    elif name == "onecycle":
        max_lrs = [o["max_lr"] or g["lr"] for g in optimizer.param_groups]
        scheduler = lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lrs,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=o["pct_start"],
            anneal_strategy=o["anneal_strategy"],
            div_factor=o["div_factor"],
            final_div_factor=o["final_div_factor"],
        )
        return Schedule(scheduler, SchedulerCadence.step)
    elif name == "plateau":
        scheduler = lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=o["factor"],
            patience=o["patience"],
            threshold=o["threshold"],
            min_lr=o["min_lr"],
        )
        return Schedule(scheduler, SchedulerCadence.plateau)
    else:  # a plugin scheduler: factory(optimizer, params, epochs, steps_per_epoch)
        plugin = SCHEDULERS.get(name)
        main = plugin.factory(optimizer, o, epochs, steps_per_epoch)
    if main is None:
        return Schedule(None, SchedulerCadence.never)
    if warmup:
        # Linear warmup from lr/(warmup+1) up to lr over `warmup` epochs, then the main schedule.
        ramp = lr_scheduler.LinearLR(
            optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
        )
        main = lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
    return Schedule(main, SchedulerCadence.epoch)
