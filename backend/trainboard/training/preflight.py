"""Preflight: overfit one batch. A model and optimizer that can learn at all drive the loss of a
single fixed batch towards zero within a few hundred steps; one that cannot has a bug or a bad
setting, and it is cheaper to learn that in seconds than after an hour of training.

The batch is the first of the run's first epoch (`batch_size` samples). It is trained on for up
to `steps` steps (or `seconds`), with the spec's optimizer, lr and clipping and no schedule. The
check passes when the batch's loss, measured in eval mode (no dropout) before and after, falls
below `PASS_FRACTION` of its start. Otherwise the message says what to check, from what was
seen: labels out of range, inputs not finite, outputs that do not fit the targets, a loss that
went NaN, rose, stayed flat or fell too little, frozen parameters, parameters the loss never
reaches.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from trainboard.training.check_settings import PreflightSettings
from trainboard.training.exits import Exit, Outcome
from trainboard.training.loop import StopCheck
from trainboard.training.setup import Setup
from trainboard.training.sinks import Sink
from trainboard.training.spec import RunSpec

PASS_FRACTION = 0.1  # the end loss must be below 10% of the start loss
FLAT = 0.9  # an end loss above 90% of the start counts as flat
NEAR_ZERO = 1e-6  # a loss this small has been fitted, whatever its start
CHECK_EVERY = 10  # steps between eval-mode looks at the batch's loss


def preflight(
    spec: RunSpec, setup: Setup, settings: PreflightSettings, *, sink: Sink, should_stop: StopCheck
) -> Outcome:
    """Try to overfit one batch; the summary's `preflight` has the verdict (the API's fields)."""
    model, optimizer, precision, loss_fn = (
        setup.model,
        setup.optimizer,
        setup.precision,
        setup.loss_fn,
    )
    xb, yb = next(setup.batches(spec))
    lr = spec.optimizer.lr
    problem = _data_problem(setup, xb, yb)
    if problem is None:
        problem = _shape_problem(setup, xb, yb)
    if problem is not None:
        return _verdict(False, math.nan, math.nan, 0, problem, [])

    def batch_loss() -> float:
        model.eval()
        with torch.no_grad(), precision.autocast():
            value = float(loss_fn(model(xb), yb))
        model.train()
        return value

    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = sum(1 for p in model.parameters() if not p.requires_grad)
    start = batch_loss()
    if not math.isfinite(start):
        message = (
            f"The loss is {start} before any training: the model's outputs or the loss "
            "cannot be computed on this batch (check the inputs, the targets and the model)."
        )
        return _verdict(False, start, start, 0, message, [])

    def fitted(value: float) -> bool:
        return value < PASS_FRACTION * start or value <= NEAR_ZERO

    losses: list[float] = []
    deadline = time.monotonic() + settings.seconds
    unreached: list[str] = []
    end = start
    for step in range(1, settings.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            loss = loss_fn(model(xb), yb)
        precision.scaler.scale(loss).backward()
        if step == 1:
            unreached = [
                n for n, p in model.named_parameters() if p.requires_grad and p.grad is None
            ]
        precision.scaler.unscale_(optimizer)
        if spec.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(trainable, spec.grad_clip_norm)
        precision.scaler.step(optimizer)
        precision.scaler.update()
        value = loss.item()
        losses.append(value)
        sink.log_step(step, {"preflight/loss": value})
        if not math.isfinite(value):
            return _verdict(
                False,
                start,
                value,
                step,
                f"The loss became {value} at step {step}: the learning rate ({lr:g}) is likely "
                f"too high (try {lr / 10:g} or gradient clipping); if it is NaN from the start, "
                "check the inputs for NaN.",
                losses,
            )
        out_of_time = time.monotonic() > deadline
        if step % CHECK_EVERY == 0 or step == settings.steps or out_of_time:
            end = batch_loss()
            if fitted(end) or out_of_time:
                break
        stop = should_stop()
        if stop is not None:
            return Outcome(stop, 0, "The one-batch check was stopped.")
    steps = len(losses)
    if fitted(end):
        message = (
            f"Passed: the model overfits one batch of {len(xb)} (loss {start:.4g} → {end:.4g} "
            f"in {steps} steps). It can learn; now train it on all the data."
        )
        return _verdict(True, start, end, steps, message, losses)
    message = _why(start, end, steps, lr, frozen, unreached)
    if steps < settings.steps:
        message += (
            f" It stopped at its time limit ({settings.seconds:g} s) after {steps} of "
            f"{settings.steps} steps: raise preflight.seconds for a longer look."
        )
    return _verdict(False, start, end, steps, message, losses)


def _why(start: float, end: float, steps: int, lr: float, frozen: int, unreached: list[str]) -> str:
    seen = f"The loss of one batch went {start:.4g} → {end:.4g} in {steps} steps"
    if not math.isfinite(end):
        return f"{seen}: it is not finite. Lower the learning rate ({lr:g}) or check the inputs."
    if end > start * 1.05:
        return (
            f"{seen}: it rose. The learning rate ({lr:g}) is likely too high: try {lr / 10:g}, "
            "or clip gradients."
        )
    checks = []
    if end > FLAT * start:
        checks.append(f"the learning rate may be too low ({lr:g}: try {lr * 10:g})")
    else:
        checks.append(
            f"it fell, but not below {PASS_FRACTION:.0%} of its start: a higher "
            f"learning rate than {lr:g}, or more capacity, should fit it"
        )
    if frozen:
        checks.append(f"{frozen} parameter tensors are frozen (requires_grad is False)")
    if unreached:
        checks.append(
            f"the loss never reaches {', '.join(unreached[:5])} (a detached graph: .detach(), "
            ".data, or a tensor rebuilt from numbers)"
        )
    else:
        checks.append("every parameter gets a gradient, so the graph is connected")
    kind = "stayed flat" if end > FLAT * start else "fell too little"
    return f"{seen}: it {kind}. Check: " + "; ".join(checks) + "."


def _data_problem(setup: Setup, xb: torch.Tensor, yb: torch.Tensor) -> str | None:
    info = setup.data.info
    if xb.is_floating_point() and not bool(torch.isfinite(xb).all()):
        return "The batch's inputs hold NaN or Inf: check the data set's values."
    if info.task == "classification":
        low, high = int(yb.min()), int(yb.max())
        if low < 0 or high >= info.num_outputs:
            return (
                f"Labels run from {low} to {high}, but the model has {info.num_outputs} "
                f"outputs (labels must be 0..{info.num_outputs - 1})."
            )
    elif not bool(torch.isfinite(yb).all()):
        return "The batch's targets hold NaN or Inf: check the target column."
    return None


def _shape_problem(setup: Setup, xb: torch.Tensor, yb: torch.Tensor) -> str | None:
    setup.model.eval()  # a look, not a step: no dropout, no BatchNorm statistics
    with torch.no_grad():
        out = setup.model(xb)
    setup.model.train()
    try:
        setup.loss_fn(out, yb)
    except Exception as exc:
        return (
            f"The model's output of shape {tuple(out.shape)} does not fit the targets of "
            f"shape {tuple(yb.shape)}: {exc}"
        )
    if setup.data.info.task == "regression" and out.shape[0] * max(1, yb[0].numel()) != out.numel():
        return (
            f"The model's output has shape {tuple(out.shape)} for targets of shape "
            f"{tuple(yb.shape)}: the loss would broadcast them against each other."
        )
    return None


def _verdict(
    passed: bool, start: float, end: float, steps: int, message: str, losses: list[float]
) -> Outcome:
    result: dict[str, Any] = {
        "passed": passed,
        "start_loss": _number(start),
        "end_loss": _number(end),
        "steps": steps,
        "threshold": PASS_FRACTION,
        "message": message,
        "losses": [_number(v) for v in losses],
    }
    return Outcome(Exit.completed, 1, message, {"preflight": result})


def _number(value: float) -> float | None:
    """JSON has no NaN: a non-finite loss is stored as null."""
    return value if math.isfinite(value) else None
