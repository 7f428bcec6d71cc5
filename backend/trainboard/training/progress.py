"""The loop's bookkeeping: divergence detection, best epoch, early stopping, ETA, validation."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch
from torch import nn

from trainboard.training.distributed import ONE_DEVICE, Ranks
from trainboard.training.exits import Exit
from trainboard.training.runtime import Precision
from trainboard.training.spec import EarlyStoppingSpec, RunSpec

RECENT_GRAD_NORMS = 20
DIVERGENCE_HINT = (
    "Try a lower learning rate, gradient clipping (grad_clip_norm), amp off, "
    "or check the data and labels for NaN or out-of-range values."
)


class Progress:
    """Where the run is and how it is going; saved in every checkpoint for an exact resume."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.epoch = 0
        self.global_step = 0
        self.best_epoch: int | None = None
        self.best_val_loss: float | None = None
        self.stop_best: float | None = None
        self.bad_epochs = 0
        self.last_metrics: dict[str, float] = {}
        self.epoch_seconds: list[float] = []
        self.diverged = False
        self.divergence = self.divergence_head = ""
        self.diverged_at: tuple[int, int | None] = (0, None)  # (epoch, global step)
        self.diagnosis: dict[str, Any] | None = None
        # The last gradient norms seen, up to the first non-finite one (for a diagnosis).
        self.recent_grad_norms: deque[float] = deque(maxlen=RECENT_GRAD_NORMS)

    # --- divergence
    def sync_window(
        self,
        window: list[tuple[torch.Tensor, torch.Tensor]],
        *,
        check_grads: bool,
        ranks: Ranks = ONE_DEVICE,
    ) -> tuple[list[float], list[float]]:
        """Copy a window of per-step losses and grad norms to the host (one sync) and check
        them. On several devices the window holds each rank's share of the global batch's
        loss, averaged here over the ranks: every rank then sees the same losses and decides
        the same about divergence."""
        if not window:
            return [], []
        stacked = torch.stack([torch.stack(pair) for pair in window])
        ranks.mean_(stacked)
        values = stacked.tolist()
        losses, norms = [v[0] for v in values], [v[1] for v in values]
        first_step = self.global_step - len(window) + 1
        for offset, (loss, norm) in enumerate(values):
            self.recent_grad_norms.append(norm)
            bad = (
                "loss"
                if not math.isfinite(loss)
                else "gradient norm"
                if check_grads and not math.isfinite(norm)
                else None
            )
            if bad:
                self.mark_diverged(
                    epoch=self.epoch + 1, what=f"the {bad}", step=first_step + offset
                )
                break
        return losses, norms

    def mark_diverged(self, *, epoch: int, what: str, step: int | None = None) -> None:
        self.diverged = True
        self.diverged_at = (epoch, step)
        where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
        self.divergence_head = f"Training diverged at {where}: {what} became NaN or infinite."
        self.divergence = f"{self.divergence_head} {DIVERGENCE_HINT}"

    # --- epochs
    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch = epoch
        self.last_metrics = dict(metrics)
        self.epoch_seconds.append(metrics["epoch_seconds"])
        if self.best_val_loss is None or metrics["val_loss"] < self.best_val_loss:
            self.best_epoch, self.best_val_loss = epoch, metrics["val_loss"]

    def eta_seconds(self, epoch: int) -> float:
        recent = self.epoch_seconds[-5:]
        return (self.spec.epochs - epoch) * sum(recent) / len(recent)

    def should_stop_early(self, rule: EarlyStoppingSpec | None) -> bool:
        if rule is None:
            return False
        value = self.last_metrics.get(rule.monitor)
        if value is None:
            raise ValueError(f"early_stopping.monitor: no metric named {rule.monitor!r}")
        score = value if rule.mode == "min" else -value
        if self.stop_best is None or score < self.stop_best - rule.min_delta:
            self.stop_best, self.bad_epochs = score, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= rule.patience

    # --- results
    def summary(self) -> dict[str, Any]:
        summary = {
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            **self.last_metrics,
        }
        if self.diagnosis is not None:
            summary["diagnosis"] = self.diagnosis
        return summary

    def message(self, exit: Exit) -> str:
        if exit is Exit.diverged:
            if self.diagnosis is None:
                return self.divergence
            tips = " ".join(self.diagnosis["suggestions"])
            return f"{self.divergence_head} {self.diagnosis['detail']} {tips}"
        if exit is Exit.early_stopped:
            rule = self.spec.early_stopping
            monitor = rule.monitor if rule else "metric"
            return f"Stopped early: {monitor} did not improve for {self.bad_epochs} epochs."
        return ""

    _SAVED = (
        "epoch",
        "global_step",
        "best_epoch",
        "best_val_loss",
        "stop_best",
        "bad_epochs",
        "last_metrics",
        "epoch_seconds",
    )

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._SAVED}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._SAVED:
            setattr(self, name, state[name])


def evaluate(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    precision: Precision,
    classify: bool,
    batch_size: int,
    ranks: Ranks = ONE_DEVICE,
) -> dict[str, float]:
    """Validation loss (and accuracy) over the whole validation split, in eval mode; on
    several devices each rank takes its piece and the sums are reduced."""
    model.eval()
    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    # Validation keeps no activations for backward, so it can take bigger batches.
    chunk = max(batch_size, 1024)
    xs, ys = ranks.shard(x), ranks.shard(y)
    with torch.inference_mode(), precision.autocast():
        for start in range(0, len(xs), chunk):
            xb, yb = xs[start : start + chunk], ys[start : start + chunk]
            out = model(xb)
            total += loss_fn(out, yb).float() * len(xb)
            if classify:
                correct += (out.argmax(dim=1) == yb).sum()
    ranks.sum_(total, correct)
    metrics = {"val_loss": total.item() / len(x)}
    if classify:
        metrics["val_accuracy"] = correct.item() / len(x)
    return metrics
