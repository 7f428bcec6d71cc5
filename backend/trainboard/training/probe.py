"""Watching one training step for the first non-finite quantity: the weights before it, the
inputs, each module's output (forward hooks, in execution order), the loss, each parameter's
gradient (gradient hooks, in backward order), the weights after it. `training/diagnosis.py`
replays a diverged run up to its first bad step with a `Probe` on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainboard.training.data import DataInfo


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
            why = (
                "some targets are not finite or out of range"
                if self._bad_labels
                else "the outputs are too far from the targets for the loss"
            )
            return Finding(
                "loss",
                last_parameter(model),
                "",
                f"The model's outputs were finite but the loss of step {self.step} was not "
                f"({loss.item():g}): {why}.",
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


def last_parameter(model: nn.Module) -> str:
    names = [name for name, _ in model.named_parameters()]
    return names[-1] if names else ""
