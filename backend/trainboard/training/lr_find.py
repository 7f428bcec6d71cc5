"""The learning-rate range test (Smith, 2015; fastai's `lr_find`): on a throw-away copy of the
spec's model and optimizer, raise the lr exponentially from `start_lr` to `end_lr`, one batch per
step, and record the loss.

The curve is smoothed with a debiased exponential moving average (beta 0.98). The test stops
early once the smoothed loss runs away (above `RUNAWAY` times its best) or is not finite.
The suggestion, `suggested_lr`, is the lr of the steepest descent of the smoothed loss against
log(lr), taken before the minimum (skipping the first 10% of the points); `minimum_over_10`,
the lr of the minimum divided by 10, is the second opinion. When the smoothed loss never falls
`MIN_FALL` below its start, there is no suggestion: the range was too low, or the model cannot
learn this data as it is set up.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from trainboard.training.check_settings import LrFindSettings
from trainboard.training.exits import Exit, Outcome
from trainboard.training.loop import StopCheck
from trainboard.training.setup import Setup
from trainboard.training.sinks import Sink
from trainboard.training.spec import RunSpec

BETA = 0.98
RUNAWAY = 4.0
MIN_FALL = 0.05  # the smoothed minimum must be 5% below the start for a suggestion
SKIP_START = 0.1  # the steepest descent is looked for after the first 10% of the points


def suggest(lrs: list[float], losses: list[float]) -> tuple[float | None, float | None, str]:
    """(steepest, minimum / 10, a sentence) from the smoothed curve; see the module's rule.
    The suggested lr is the steepest, else the minimum / 10 (never below the range)."""
    if len(losses) < 5:
        return None, None, f"Only {len(losses)} steps ran before the loss ran away: lower start_lr."
    best = int(np.argmin(losses))
    if losses[best] > (1 - MIN_FALL) * losses[0]:
        return (
            None,
            None,
            f"The loss never fell (from {losses[0]:.4g}, at best {losses[best]:.4g}) between "
            f"lr {lrs[0]:.3g} and {lrs[-1]:.3g}: try a higher range, or check the model and "
            "data (run the one-batch check).",
        )
    minimum_over_10 = max(lrs[best] / 10, lrs[0])  # a suggestion inside the tested range
    first = int(len(losses) * SKIP_START)
    if best - first < 2:
        sentence = (
            f"The loss fell at once and was lowest at lr {lrs[best]:.3g}: the minimum / 10, "
            f"{minimum_over_10:.3g}, is suggested (try a lower start_lr for a steepest descent)."
        )
        return None, minimum_over_10, sentence
    slopes = np.gradient(np.asarray(losses[first : best + 1]), np.log(lrs[first : best + 1]))
    # Not the minimum itself: its one-sided slope only says the curve arrived there.
    steepest = lrs[first + int(np.argmin(slopes[:-1]))]
    return (
        steepest,
        minimum_over_10,
        f"The loss falls fastest at lr {steepest:.3g} (suggested); its minimum is at "
        f"{lrs[best]:.3g}, so {minimum_over_10:.3g} is a careful second choice.",
    )


def lr_find(
    spec: RunSpec, setup: Setup, settings: LrFindSettings, *, sink: Sink, should_stop: StopCheck
) -> Outcome:
    """Run the range test and return its Outcome (summary: `suggested_lr`, `suggestions`,
    `lr_find` with the curve, `message`); the points also go to `sink` by step."""
    model, optimizer, precision = setup.model, setup.optimizer, setup.precision
    params = [p for p in model.parameters() if p.requires_grad]
    # The tested lr is the spec's `optimizer.lr`; each parameter group keeps its lr_scale.
    scales = [g["lr"] / spec.optimizer.lr for g in optimizer.param_groups]
    factor = (settings.end_lr / settings.start_lr) ** (1 / (settings.steps - 1))
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, stopped = 0.0, "it reached end_lr"
    model.train()
    batches = setup.batches(spec)
    for i in range(settings.steps):
        lr = settings.start_lr * factor**i
        for group, scale in zip(optimizer.param_groups, scales, strict=True):
            group["lr"] = lr * scale
        xb, yb = next(batches)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            loss = setup.loss_fn(model(xb), yb)
        precision.scaler.scale(loss).backward()
        precision.scaler.unscale_(optimizer)
        if spec.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, spec.grad_clip_norm)
        precision.scaler.step(optimizer)
        precision.scaler.update()
        value = loss.item()
        if not math.isfinite(value):
            stopped = f"the loss became {value} at lr {lr:.3g}"
            break
        average = BETA * average + (1 - BETA) * value
        smooth = average / (1 - BETA ** (i + 1))
        lrs.append(lr)
        raw.append(value)
        smoothed.append(smooth)
        sink.log_step(i + 1, {"lr_find/lr": lr, "lr_find/loss": smooth, "lr_find/raw_loss": value})
        if smooth > RUNAWAY * min(smoothed):
            stopped = f"the loss ran away (above {RUNAWAY:g} times its best) at lr {lr:.3g}"
            break
        stop = should_stop()
        if stop is not None:
            return Outcome(stop, 0, "The learning-rate range test was stopped.")
    steepest, minimum_over_10, sentence = suggest(lrs, smoothed)
    summary: dict[str, Any] = {
        "suggested_lr": steepest if steepest is not None else minimum_over_10,
        "suggestions": {"steepest": steepest, "minimum_over_10": minimum_over_10},
        "lr_find": {"lrs": lrs, "losses": smoothed, "raw_losses": raw},
        "stopped": stopped,
        "message": f"{sentence} The test ran {len(lrs)} steps and stopped because {stopped}.",
    }
    return Outcome(Exit.completed, 1, summary["message"], summary)
