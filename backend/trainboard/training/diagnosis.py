"""Why a run diverged: which quantity went non-finite first (the weights, the inputs, an
activation, the loss or a gradient), in which parameter or module, and what to try.

The loop notices a NaN only when it syncs (every `log_every_steps`), by which time the step
that made it has changed the weights. So the diagnosis replays the attempt, from the checkpoint
it started from (or from the seed), with the same batches and random numbers, up to the first
bad step, and watches that one step with a `Probe`: the weights and inputs before it, forward
hooks on every module, gradient hooks on every parameter, the weights after it. When a replay
is not possible in `REPLAY_SECONDS` (or finds nothing), the diverged model itself is examined.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainboard.training.data import DataInfo
from trainboard.training.exits import Exit

if TYPE_CHECKING:
    from trainboard.training.progress import Progress
    from trainboard.training.setup import Setup

REPLAY_SECONDS = 60.0
# A gradient norm that grew this many times over the recent steps before the NaN is "exploding".
EXPLODING_GROWTH = 10.0


@dataclass
class Finding:
    """The first non-finite quantity of the watched step."""

    what: str  # "weights" | "activation" | "loss" | "gradient"
    where: str  # a name of the model's state dict
    module: str  # the module it belongs to ("" for the model as a whole)
    detail: str
    bad_inputs: bool = False
    bad_labels: bool = False


def owning_parameter(model: nn.Module, module_name: str) -> str:
    """The first state-dict name of `module_name`, or of the closest module before it that has
    one (an activation function has no parameters of its own)."""
    names = list(model.state_dict())
    owned = [n for n in names if n.startswith(f"{module_name}.")] if module_name else []
    if owned:
        return owned[0]
    before = ""
    for name, module in model.named_modules():
        if name == module_name:
            break
        own = [f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False)]
        before = own[0] if own else before
    return before or (names[0] if names else module_name)


def first_nonfinite_parameter(model: nn.Module) -> str | None:
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


class Probe:
    """Watches one training step (`step`, a global step) of a replay and says what went
    non-finite first. The loop calls `attach` before the step and `detach` after it."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.attached = False
        self.finding: Finding | None = None
        self._handles: list[Any] = []
        self._activation: str | None = None
        self._gradient: str | None = None
        self._before: str | None = None
        self._bad_inputs = self._bad_labels = False

    def attach(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, info: DataInfo) -> None:
        self.attached = True
        self._before = first_nonfinite_parameter(model)
        self._bad_inputs = xb.is_floating_point() and not bool(torch.isfinite(xb).all())
        if info.task == "classification":
            self._bad_labels = bool(((yb < 0) | (yb >= info.num_outputs)).any())
        else:
            self._bad_labels = not bool(torch.isfinite(yb).all())
        for name, module in model.named_modules():
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        for name, param in model.named_parameters():
            if param.requires_grad:
                self._handles.append(param.register_hook(self._grad_hook(name)))

    def _forward_hook(self, name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self._activation is None and _nonfinite(output):
                self._activation = name

        return hook

    def _grad_hook(self, name: str) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            # Hooks fire in backward order: the first bad one is where the NaN appeared.
            if self._gradient is None and not bool(torch.isfinite(grad).all()):
                self._gradient = name

        return hook

    def detach(self, model: nn.Module, loss: torch.Tensor) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.attached = False
        self.finding = self._first(model, loss)

    def _first(self, model: nn.Module, loss: torch.Tensor) -> Finding | None:
        flags = {"bad_inputs": self._bad_inputs, "bad_labels": self._bad_labels}
        if self._before is not None:
            return Finding(
                "weights",
                self._before,
                self._before.rpartition(".")[0],
                f"The weight {self._before} was already non-finite before step {self.step}.",
                **flags,
            )
        if self._activation is not None:
            source = (
                "its inputs already held NaN or Inf"
                if self._bad_inputs
                else "the weights were still finite"
            )
            module = self._activation or "the model"
            return Finding(
                "activation",
                owning_parameter(model, self._activation),
                self._activation,
                f"The output of {module} became non-finite in the forward pass of step "
                f"{self.step}; {source}.",
                **flags,
            )
        if not bool(torch.isfinite(loss.detach()).all()):
            last = list(model.state_dict())[-1:] or [""]
            return Finding(
                "loss",
                last[0],
                "",
                f"The model's outputs were finite but the loss of step {self.step} was not "
                f"({loss.item():g}): the outputs are too far from the targets for the loss.",
                **flags,
            )
        if self._gradient is not None:
            return Finding(
                "gradient",
                self._gradient,
                self._gradient.rpartition(".")[0],
                f"The loss of step {self.step} was finite, but the gradient of "
                f"{self._gradient} was not.",
                **flags,
            )
        after = first_nonfinite_parameter(model)
        if after is not None:
            return Finding(
                "weights",
                after,
                after.rpartition(".")[0],
                f"Loss and gradients of step {self.step} were finite, but the optimizer's "
                f"update made {after} non-finite.",
                **flags,
            )
        return None


def _nonfinite(output: Any) -> bool:
    if isinstance(output, torch.Tensor):
        return output.is_floating_point() and not bool(torch.isfinite(output).all())
    if isinstance(output, tuple | list):
        return any(_nonfinite(o) for o in output)
    return False


def diagnose(
    progress: Progress,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    setup: Setup,
    *,
    replay: Callable[..., Any] | None,
    should_stop: Callable[[], Exit | None],
) -> dict[str, Any]:
    """The `diagnosis` of a diverged run (the API's fields), from a replay of its first bad
    step when `replay` (the loop, bound to this attempt's spec and start) is given."""
    epoch, step = progress.diverged_at
    finding = None
    if replay is not None and step is not None:
        finding = _replayed(replay, step, should_stop)
    if finding is None:
        finding = _examined(model, setup, step)
    lr = float(optimizer.param_groups[0]["lr"])
    norms = [n if math.isfinite(n) else None for n in progress.recent_grad_norms]
    return {
        "epoch": epoch,
        "step": step,
        "what": finding.what,
        "where": finding.where,
        "module": finding.module,
        "lr": lr,
        "recent_grad_norms": norms,
        "detail": finding.detail,
        "suggestions": suggestions(finding, norms, lr, progress.spec),
    }


def _replayed(
    replay: Callable[..., Any], step: int, should_stop: Callable[[], Exit | None]
) -> Finding | None:
    from trainboard.training.sinks import MemorySink

    deadline = time.monotonic() + REPLAY_SECONDS

    def stop() -> Exit | None:
        return should_stop() or (Exit.interrupted if time.monotonic() > deadline else None)

    probe = Probe(step)
    try:
        replay(sink=MemorySink(), checkpoints=_Discard(), should_stop=stop, probe=probe)
    except Exception:  # a replay that fails leaves the examination of the model as it is
        return None
    return probe.finding


def _examined(model: nn.Module, setup: Setup, step: int | None) -> Finding:
    """What the diverged model shows: a non-finite weight, else the first module whose output
    on a validation batch is non-finite."""
    bad = first_nonfinite_parameter(model)
    if bad is not None:
        return Finding(
            "weights",
            bad,
            bad.rpartition(".")[0],
            f"After the divergence the weight {bad} is non-finite.",
            bad_inputs=not bool(torch.isfinite(setup.x_train).all()),
        )
    probe = Probe(step or 0)
    x, y = setup.x_val[:256], setup.y_val[:256]
    probe.attach(model, x, y, setup.data.info)
    model.eval()
    with torch.no_grad():
        loss = setup.loss_fn(model(x).float(), y)
    probe.detach(model, loss)
    return probe.finding or Finding(
        "loss", list(model.state_dict())[-1], "", "The loss became non-finite."
    )


class _Discard:
    """A replay keeps no checkpoints."""

    def save(self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float]) -> None:
        pass


def suggestions(finding: Finding, norms: list[float | None], lr: float, spec: Any) -> list[str]:
    """What to try, most likely first, from what was seen."""
    tips: list[str] = []
    if finding.bad_inputs:
        tips.append(
            "Check the data: the inputs of the diverging batch hold NaN or Inf (a column "
            "with values too large to standardize, or missing values that were not filled)."
        )
    if finding.bad_labels:
        tips.append("Check the labels: some targets are out of range or not finite.")
    if spec.amp == "fp16" and finding.what in ("activation", "loss", "gradient"):
        tips.append(
            "fp16 overflowed: use amp 'bf16' (the range of fp32) or 'off'; the GradScaler "
            "only rescues gradients, not activations."
        )
    finite = [n for n in norms if n is not None]
    exploding = len(finite) >= 2 and finite[-1] > EXPLODING_GROWTH * max(min(finite), 1e-12)
    clip = (
        f"Clip gradients (grad_clip_norm: 1.0): the gradient norm grew from {min(finite):.3g} "
        f"to {finite[-1]:.3g} before the NaN."
        if exploding
        else "Clip gradients (grad_clip_norm: 1.0) to bound each step."
    )
    lower = f"Use a lower learning rate: {lr:g} → {lr / 10:g} (the LR range test suggests one)."
    tips += [clip, lower] if exploding or finding.what == "gradient" else [lower, clip]
    if spec.grad_clip_norm is not None:
        tips.remove(clip)  # clipping is on already
    return tips
