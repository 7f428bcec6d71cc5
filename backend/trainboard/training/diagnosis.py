"""Why a run diverged: which quantity went non-finite first (the weights, the inputs, an
activation, the loss or a gradient), in which parameter or module, and what to try.

The loop notices a NaN only when it syncs (every `log_every_steps`), by which time the step
that made it has changed the weights. So the diagnosis replays the run, with the same batches
and random numbers, from its latest checkpoint file before the bad epoch (else from where the
attempt began), up to the first bad step, and watches that one step with a `Probe`
(`training/probe.py`). When a replay is not possible in `REPLAY_SECONDS` (or finds nothing),
the diverged model itself is examined, and the diagnosis says so (`method`).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainboard.training.exits import Exit
from trainboard.training.probe import Finding, Probe, first_nonfinite_parameter, last_parameter

if TYPE_CHECKING:
    from trainboard.training.progress import Progress
    from trainboard.training.setup import Setup

REPLAY_SECONDS = 60.0
# A gradient norm that grew this many times over the recent steps before the NaN is "exploding".
EXPLODING_GROWTH = 10.0


def diagnose(
    progress: Progress,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    setup: Setup,
    *,
    replay: Callable[..., Any] | None,
    should_stop: Callable[[], Exit | None],
    checkpoints: Path | None = None,
) -> dict[str, Any] | None:
    """The `diagnosis` of a diverged run (the API's fields), from a replay of its first bad
    step when `replay` (the loop, bound to this attempt's spec and start) is given: from the
    latest checkpoint in `checkpoints` before the bad epoch, else from the attempt's start.
    None when even the examination fails: the run still ends diverged."""
    try:
        epoch, step = progress.diverged_at
        finding, method = None, "examined"
        if replay is not None and step is not None:
            finding = _replayed(replay, step, should_stop, latest_before(checkpoints, epoch))
            method = "replay"
        if finding is None:
            finding, method = _examined(model, setup, step), "examined"
        # The spec's lr as the schedule has it now: the first group's lr without its lr_scale
        # (a scheduler keeps each group's starting lr as `initial_lr`).
        group = optimizer.param_groups[0]
        initial = group.get("initial_lr") or group["lr"] or 1.0
        lr = float(group["lr"]) * progress.spec.optimizer.lr / initial
        norms = [n if math.isfinite(n) else None for n in progress.recent_grad_norms]
        fp16 = setup.precision.dtype == torch.float16
        return {
            "epoch": epoch,
            "step": step,
            "what": finding.what,
            "where": finding.where,
            "module": finding.module,
            "lr": lr,
            "recent_grad_norms": norms,
            "detail": finding.detail,
            "method": method,
            "suggestions": suggestions(finding, norms, lr, fp16=fp16, clipped=_clipped(progress)),
        }
    except Exception:
        traceback.print_exc()  # to the run's log; the run ends diverged without a diagnosis
        return None


def _clipped(progress: Progress) -> bool:
    return progress.spec.grad_clip_norm is not None


def latest_before(folder: Path | None, epoch: int) -> Path | None:
    """The checkpoint file of the latest epoch before `epoch` in `folder`, if any."""
    if folder is None or not folder.is_dir():
        return None
    epochs = {}
    for path in folder.glob("epoch-*.pt"):
        number = path.stem.removeprefix("epoch-")
        if number.isdigit() and int(number) < epoch:
            epochs[int(number)] = path
    return epochs[max(epochs)] if epochs else None


def _replayed(
    replay: Callable[..., Any],
    step: int,
    should_stop: Callable[[], Exit | None],
    start: Path | None,
) -> Finding | None:
    from trainboard.training.sinks import MemorySink

    deadline = time.monotonic() + REPLAY_SECONDS

    def stop() -> Exit | None:
        return should_stop() or (Exit.interrupted if time.monotonic() > deadline else None)

    # From the latest checkpoint; from where the attempt began if that one cannot be read.
    for resume in ([start] if start is not None else []) + [None]:
        probe = Probe(step)
        overrides = {"resume_from": resume} if resume is not None else {}
        try:
            replay(
                sink=MemorySink(),
                checkpoints=_Discard(),
                should_stop=stop,
                probe=probe,
                **overrides,
            )
        except Exception:
            traceback.print_exc()  # to the run's log: the replay failed, not the run
            continue
        return probe.finding
    return None


def _examined(model: nn.Module, setup: Setup, step: int | None) -> Finding:
    """What the diverged model shows: a non-finite weight, else the first module whose output
    on a validation batch is non-finite. Where the NaN began is not known this way."""
    unknown = " (Where it began is not known: the step could not be replayed.)"
    bad = first_nonfinite_parameter(model)
    if bad is not None:
        return Finding(
            "weights",
            bad,
            bad.rpartition(".")[0],
            f"After the divergence the weight {bad} is non-finite.{unknown}",
            bad_inputs=not bool(torch.isfinite(setup.x_train).all()),
        )
    probe = Probe(step or 0)
    x, y = setup.x_val[:256], setup.y_val[:256]
    probe.attach(model, x, y, setup.data.info)
    model.eval()
    with torch.no_grad():
        loss = setup.loss_fn(model(x).float(), y)
    probe.detach(model, loss)
    if probe.finding is not None:
        probe.finding.detail += unknown
        return probe.finding
    return Finding("loss", last_parameter(model), "", f"The loss became non-finite.{unknown}")


class _Discard:
    """A replay keeps no checkpoints."""

    def save(self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float]) -> None:
        pass


def suggestions(
    finding: Finding, norms: list[float | None], lr: float, *, fp16: bool, clipped: bool
) -> list[str]:
    """What to try, most likely first, from what was seen."""
    tips: list[str] = []
    if finding.bad_inputs:
        tips.append(
            "Check the data: the inputs of the diverging batch hold NaN or Inf (a column "
            "with values too large to standardize, or missing values that were not filled)."
        )
    if finding.bad_labels:
        tips.append("Check the labels: some targets are out of range or not finite.")
    if fp16 and finding.what in ("activation", "loss", "gradient"):
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
    if clipped:
        tips.remove(clip)  # clipping is on already
    return tips
