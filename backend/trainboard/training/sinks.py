"""Where the loop's reports go: one typed port (`Sink`) and its in-memory, TensorBoard and
console implementations, and the port for checkpoints (`CheckpointWriter`). The loop only ever
talks to these two; what it hands them is plain data, so it can also cross a process boundary."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from trainboard.training.checkpoint import CheckpointEntry, CheckpointManager
from trainboard.training.exits import End, Failure


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    metrics: dict[str, float]
    eta_seconds: float | None
    summary: dict[str, Any] = field(default_factory=dict)  # best epoch so far + these metrics
    # Detached float CPU tensors by parameter name, on the epochs the loop samples them (else
    # empty); for CPU parameters they are views, valid until the next step.
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)


class Sink(Protocol):
    def log_step(self, step: int, metrics: Mapping[str, float]) -> None: ...
    def log_epoch(self, report: EpochReport) -> None: ...
    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None: ...
    def close(self, end: End) -> None:
        """The attempt ended: the loop's Outcome, or the Failure of what raised."""


class CheckpointWriter(Protocol):
    def save(self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float]) -> None: ...


class CheckpointFiles:
    """Writes checkpoint files in this process, then tells `sink` which files are kept."""

    def __init__(self, manager: CheckpointManager, sink: Sink) -> None:
        self.manager, self.sink = manager, sink

    def save(self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float]) -> None:
        self.sink.log_checkpoints(self.manager.save(state, epoch=epoch, metrics=metrics))


class MemorySink:
    """Keeps everything in lists: for tests and for the scikit-learn estimators."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []
        self.epochs: list[dict[str, float]] = []
        self.checkpoints: list[list[CheckpointEntry]] = []
        self.end: End | None = None

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self.steps.append((step, dict(metrics)))

    def log_epoch(self, report: EpochReport) -> None:
        self.epochs.append({"epoch": report.epoch, **report.metrics})

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        self.checkpoints.append(list(entries))

    def close(self, end: End) -> None:
        self.end = end


class NullSink:
    """Reports and checkpoints that go nowhere: a run's ranks other than 0 (rank 0 reports)."""

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def log_epoch(self, report: EpochReport) -> None:
        pass

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        pass

    def close(self, end: End) -> None:
        pass

    def save(self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float]) -> None:
        pass


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

    def close(self, end: End) -> None:
        for sink in self.sinks:
            sink.close(end)


# Linear bins: TensorBoard's default exponential ones cost 3x as much to compute.
BINS = 64
# Step points reach the event file at least this often; each epoch's at its end.
TENSORBOARD_FLUSH_SECONDS = 2.0


class TensorBoardSink:
    """Scalars under the API's names and x; the reported weights and gradients as histograms;
    hparams at the end. Each epoch is flushed, so `tensorboard --logdir` shows it."""

    def __init__(self, logdir: Path, hparams: dict[str, Any]) -> None:
        from trainboard.training.eventfile import EventFile

        self.events = EventFile(logdir)
        self.hparams = hparams
        self.flushed_at = time.monotonic()

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self.events.add_scalars(metrics, step)
        if time.monotonic() - self.flushed_at >= TENSORBOARD_FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        self.events.flush()
        self.flushed_at = time.monotonic()

    def log_epoch(self, report: EpochReport) -> None:
        self.events.add_scalars(report.metrics, report.epoch)
        for prefix, tensors in (("weights", report.weights), ("grads", report.grads)):
            for name, tensor in tensors.items():
                self.events.add_histogram(f"{prefix}/{name}", tensor, report.epoch, bins=BINS)
        self._flush()

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        pass

    def close(self, end: End) -> None:
        try:
            if isinstance(end, Failure):
                return
            final = {
                f"hparam/{k}": float(v)
                for k, v in end.summary.items()
                if isinstance(v, int | float) and math.isfinite(v)
            }
            # In this run's own event file, where the HParams dashboard looks for its session.
            self.events.add_hparams(self.hparams, final)
            self.events.add_scalars(final, end.epoch)
        finally:
            self.events.close()


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

    def close(self, end: End) -> None:
        self.bar.close()
        if isinstance(end, Failure):
            return  # the error and its traceback are in the log already
        print(
            f"{end.exit.value} after epoch {end.epoch}. {end.message}".strip(),
            file=self.bar.fp,
        )
