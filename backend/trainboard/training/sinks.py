"""Where the loop's reports go: one typed port (`Sink`) and its in-memory, TensorBoard and
console implementations. The loop only ever talks to a `Sink`."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from trainboard.training.checkpoint import CheckpointEntry
from trainboard.training.exits import Exit


@dataclass
class Outcome:
    exit: Exit
    epoch: int  # last completed epoch
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    metrics: dict[str, float]
    eta_seconds: float | None
    model: nn.Module
    summary: dict[str, Any] = field(default_factory=dict)  # best epoch so far + these metrics


class Sink(Protocol):
    def log_step(self, step: int, metrics: Mapping[str, float]) -> None: ...
    def log_epoch(self, report: EpochReport) -> None: ...
    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None: ...
    def close(self, outcome: Outcome) -> None: ...


class MemorySink:
    """Keeps everything in lists: for tests and for the scikit-learn estimators."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []
        self.epochs: list[dict[str, float]] = []
        self.checkpoints: list[list[CheckpointEntry]] = []
        self.outcome: Outcome | None = None

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self.steps.append((step, dict(metrics)))

    def log_epoch(self, report: EpochReport) -> None:
        self.epochs.append({"epoch": report.epoch, **report.metrics})

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        self.checkpoints.append(list(entries))

    def close(self, outcome: Outcome) -> None:
        self.outcome = outcome


class FanOut:
    """Several sinks behind one port."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        for sink in self.sinks:
            sink.log_step(step, metrics)

    def log_epoch(self, report: EpochReport) -> None:
        for sink in self.sinks:
            sink.log_epoch(report)

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        for sink in self.sinks:
            sink.log_checkpoints(entries)

    def close(self, outcome: Outcome) -> None:
        for sink in self.sinks:
            sink.close(outcome)


# Linear bins: TensorBoard's default exponential ones cost 3x as much to compute.
BINS = 64


class TensorBoardSink:
    """Scalars under the API's names and x; histograms every few epochs; hparams at the end."""

    def __init__(self, logdir: Path, hparams: dict[str, Any], histogram_every: int = 10) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(logdir), flush_secs=5)
        self.hparams = hparams
        self.histogram_every = histogram_every

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_epoch(self, report: EpochReport) -> None:
        for key, value in report.metrics.items():
            self.writer.add_scalar(key, value, report.epoch)
        if self.histogram_every and (report.epoch == 1 or report.epoch % self.histogram_every == 0):
            for name, param in report.model.named_parameters():
                self.writer.add_histogram(
                    f"weights/{name}", param.detach().float().cpu(), report.epoch, bins=BINS
                )
                if param.grad is not None:
                    self.writer.add_histogram(
                        f"grads/{name}", param.grad.detach().float().cpu(), report.epoch, bins=BINS
                    )

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        pass

    def close(self, outcome: Outcome) -> None:
        from torch.utils.tensorboard.summary import hparams

        final = {
            f"hparam/{k}": float(v)
            for k, v in outcome.summary.items()
            if isinstance(v, int | float) and math.isfinite(v)
        }
        # Written into this run's own event file (add_hparams would make a sub-folder).
        for summary in hparams(self.hparams, final):
            self.writer.file_writer.add_summary(summary)
        for key, value in final.items():
            self.writer.add_scalar(key, value, outcome.epoch)
        self.writer.close()


class ConsoleSink:
    """A progress bar over epochs with the latest losses and the ETA."""

    def __init__(self, epochs: int, start_epoch: int = 0, stream: Any = None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=epochs,
            initial=start_epoch,
            unit="epoch",
            file=stream or sys.stderr,
            mininterval=0.5,
        )

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def log_epoch(self, report: EpochReport) -> None:
        shown = {
            k: f"{report.metrics[k]:.4g}"
            for k in ("train_loss", "val_loss", "val_accuracy")
            if k in report.metrics
        }
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        pass

    def close(self, outcome: Outcome) -> None:
        self.bar.close()
        print(
            f"{outcome.exit.value} after epoch {outcome.epoch}. {outcome.message}".strip(),
            file=self.bar.fp,
        )
