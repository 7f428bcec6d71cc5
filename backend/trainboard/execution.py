"""Executing one claimed run: spec → loop → sinks (database, TensorBoard, console) → status."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import session_scope
from trainboard.models import RunStatus
from trainboard.stop import StopFlag
from trainboard.store import queue
from trainboard.store.checkpoints import sync_checkpoints
from trainboard.store.metrics import add_metrics
from trainboard.store.runs import get_run
from trainboard.training.checkpoint import CheckpointEntry, CheckpointManager
from trainboard.training.loop import train
from trainboard.training.sinks import (
    ConsoleSink,
    EpochReport,
    Exit,
    FanOut,
    Outcome,
    TensorBoardSink,
)
from trainboard.training.spec import RunSpec, spec_paths

STEP_FLUSH_SECONDS = 1.0


class RunTakenOver(Exception):
    """Another attempt holds the run now; this one must stop without writing."""


class StoreSink:
    """Writes metrics, progress and checkpoint rows to the database, guarded by the attempt."""

    def __init__(self, engine: Engine, run_id: int, attempt: int) -> None:
        self.engine, self.run_id, self.attempt = engine, run_id, attempt
        self.pending: list[tuple[str, int, float | None, float | None]] = []
        self.last_flush = time.monotonic()

    def _write(self, extra: Any = None) -> None:
        """Pending points, plus `extra(session)` if given, in one attempt-guarded transaction."""
        with session_scope(self.engine) as session:
            ok = add_metrics(session, run_id=self.run_id, attempt=self.attempt, points=self.pending)
            if ok and extra is not None:
                ok = extra(session)
            if not ok:
                raise RunTakenOver(f"run {self.run_id} attempt {self.attempt} was taken over")
        self.pending = []
        self.last_flush = time.monotonic()

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        now = time.time()
        self.pending += [(key, step, value, now) for key, value in metrics.items()]
        if time.monotonic() - self.last_flush >= STEP_FLUSH_SECONDS:
            self._write()

    def log_epoch(self, report: EpochReport) -> None:
        # An epoch's points and the run's progress land in one transaction.
        now = time.time()
        self.pending += [(key, report.epoch, value, now) for key, value in report.metrics.items()]
        self._write(
            lambda s: queue.report_progress(
                s,
                run_id=self.run_id,
                attempt=self.attempt,
                epoch=report.epoch,
                eta_seconds=report.eta_seconds,
                summary=report.summary,
            )
        )

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        self._write(
            lambda s: sync_checkpoints(s, run_id=self.run_id, attempt=self.attempt, entries=entries)
        )

    def close(self, outcome: Outcome) -> None:
        if self.pending:
            self._write()


EXIT_STATUS = {
    Exit.completed: RunStatus.completed,
    Exit.early_stopped: RunStatus.completed,
    Exit.cancelled: RunStatus.cancelled,
    Exit.diverged: RunStatus.diverged,
    Exit.interrupted: RunStatus.queued,  # back in the queue; the next attempt resumes
}


def execute_run(
    settings: Settings,
    engine: Engine,
    *,
    run_id: int,
    attempt: int,
    device: str,
    stop: StopFlag,
    console: bool = True,
) -> RunStatus | None:
    """Train a claimed run to its end and record how it ended. Returns the final status, or None
    when the run was taken over by another attempt (then nothing more is written)."""
    with session_scope(engine) as session:
        run = get_run(session, run_id=run_id)
    run_dir = settings.run_dir(run_id)
    try:
        spec = RunSpec.model_validate(run.spec)
        resume = CheckpointManager(run_dir / "checkpoints", spec.checkpoint).latest_path()
        print(
            f"run {run_id} attempt {attempt} on {device}"
            + (f", resuming from {resume.name}" if resume else ""),
            flush=True,
        )
        hparams = {
            k: v
            for k, v in spec_paths(spec.model_dump(mode="json")).items()
            if isinstance(v, int | float | str | bool)
        }
        sinks = [
            StoreSink(engine, run_id, attempt),
            TensorBoardSink(run_dir / "tensorboard", hparams),
        ]
        if console:
            sinks.append(ConsoleSink(spec.epochs, run.epoch, stream=sys.stdout))
        outcome = train(
            spec,
            run_dir=run_dir,
            sink=FanOut(*sinks),
            should_stop=stop,
            resume_from=resume,
            uploads_dir=settings.uploads_dir,
            device=device,
        )
        status, error, summary = EXIT_STATUS[outcome.exit], outcome.message or None, outcome.summary
        if outcome.exit is Exit.early_stopped:
            error = None
            summary = {**summary, "early_stopped": outcome.message}
    except RunTakenOver as exc:
        print(f"stopping: {exc}", flush=True)
        return None
    except Exception as exc:
        traceback.print_exc()
        status, error, summary = RunStatus.failed, f"{type(exc).__name__}: {exc}", None
    with session_scope(engine) as session:
        if not queue.finish_run(
            session, run_id=run_id, attempt=attempt, status=status, error=error, summary=summary
        ):
            return None
    print(f"run {run_id} {status.value}" + (f": {error}" if error else ""), flush=True)
    return status
