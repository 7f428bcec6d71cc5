"""An attempt's rows in the database: metrics, progress, checkpoint rows and the run folder's
size, written in few short transactions and only while the attempt still holds the run."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from trainboard.db import reader, session_scope
from trainboard.store import queue
from trainboard.store.checkpoints import sync_checkpoints
from trainboard.store.files import folder_bytes
from trainboard.store.metrics import add_metrics
from trainboard.training.checkpoint import CheckpointEntry, CheckpointManager
from trainboard.training.exits import End, RunTakenOver
from trainboard.training.sinks import CheckpointFiles, EpochReport, Sink

STEP_FLUSH_SECONDS = 1.0
# Half a second, as a remote worker batches its reports: a live page is that late at most (the
# first epoch shows at once), and a batch's transaction costs more than several short epochs'
# other recording (for a digits MLP, a quarter second cost ~1 ms more recording CPU an epoch).
BATCH_SECONDS = 0.5


class StoreSink:
    """Writes metrics, progress and checkpoint rows to the database, guarded by the attempt.

    With `batch_seconds` 0, each epoch and each list of checkpoints commits at once. Otherwise
    writes wait until `batch_seconds` have passed since the last commit, so a burst of short
    epochs lands in a few transactions instead of several each; the recorder calls `flush_due`
    between messages, so nothing waits much longer. Step points wait up to STEP_FLUSH_SECONDS
    either way.

    Checkpoint rows commit together with the metrics of the epochs they cover, and a resumed
    attempt starts from the latest row (`committed_checkpoints`), so resuming never skips an
    epoch whose metrics were not stored. New files are fsynced just before the rows that list
    them commit (`files.make_durable`), and files that retention drops are deleted only once
    the list without them is committed (`files.delete_forgotten`)."""

    def __init__(
        self,
        engine: Engine,
        run_id: int,
        attempt: int,
        *,
        batch_seconds: float = 0.0,
        files: CheckpointManager | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.engine, self.run_id, self.attempt = engine, run_id, attempt
        self.batch_seconds, self.files, self.run_dir = batch_seconds, files, run_dir
        self.points: list[tuple[str, int, float | None, float | None]] = []
        self.progress: EpochReport | None = None
        self.checkpoints: list[CheckpointEntry] | None = None
        self.last_flush = -math.inf  # the first epoch shows at once: the run has started
        self.held_at = time.monotonic()

    def flush(self) -> None:
        """Everything pending, in one attempt-guarded transaction."""
        if not (self.points or self.progress or self.checkpoints is not None):
            return
        disk_bytes = self._disk_bytes() if self.progress or self.checkpoints is not None else None
        if self.checkpoints is not None and self.files is not None:
            try:
                self.files.make_durable()  # before the rows that list the files commit
            except OSError:
                self.checkpoints = list(self.files.entries)  # without the files it forgot
                raise
        with session_scope(self.engine) as session:
            ok = add_metrics(session, run_id=self.run_id, attempt=self.attempt, points=self.points)
            if ok and self.progress is not None:
                ok = queue.report_progress(
                    session,
                    run_id=self.run_id,
                    attempt=self.attempt,
                    epoch=self.progress.epoch,
                    eta_seconds=self.progress.eta_seconds,
                    summary=self.progress.summary,
                )
            if ok and self.checkpoints is not None:
                ok = sync_checkpoints(
                    session, run_id=self.run_id, attempt=self.attempt, entries=self.checkpoints
                )
            if ok and disk_bytes is not None:
                ok = queue.report_disk_bytes(
                    session, run_id=self.run_id, attempt=self.attempt, disk_bytes=disk_bytes
                )
            if not ok:
                raise RunTakenOver(f"run {self.run_id} attempt {self.attempt} was taken over")
        if self.checkpoints is not None and self.files is not None:
            self.files.delete_forgotten()
        self.points, self.progress, self.checkpoints = [], None, None
        self.last_flush = self.held_at = time.monotonic()

    def _disk_bytes(self) -> int | None:
        """The run folder's size once this flush's forgotten checkpoints are deleted, measured
        before the transaction, so no lock is held while the folder is walked."""
        if self.run_dir is None:
            return None
        return folder_bytes(self.run_dir) - (self.files.forgotten_bytes() if self.files else 0)

    def check_held(self) -> None:
        """Before a checkpoint file is written: make sure this attempt still held the run at
        most `batch_seconds` ago, by its last commit or by a read, so an attempt that was taken
        over stops writing into the folder its successor resumes from."""
        if time.monotonic() - self.held_at < self.batch_seconds:
            return
        with session_scope(reader(self.engine)) as session:
            if not queue.holds_run(session, run_id=self.run_id, attempt=self.attempt):
                raise RunTakenOver(f"run {self.run_id} attempt {self.attempt} was taken over")
        self.held_at = time.monotonic()

    def flush_due(self) -> None:
        """Flush what has waited long enough: epochs and checkpoint rows `batch_seconds`
        after the last commit, step points STEP_FLUSH_SECONDS after it."""
        if self.progress is not None or self.checkpoints is not None:
            wait = self.batch_seconds
        elif self.points:
            wait = STEP_FLUSH_SECONDS
        else:
            return
        if time.monotonic() - self.last_flush >= wait:
            self.flush()

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        now = time.time()
        self.points += [(key, step, value, now) for key, value in metrics.items()]
        self.flush_due()

    def log_epoch(self, report: EpochReport) -> None:
        now = time.time()
        self.points += [(key, report.epoch, value, now) for key, value in report.metrics.items()]
        self.progress = report  # an epoch's points and the run's progress land together
        self.flush_due()

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        self.checkpoints = entries  # the latest list is the whole truth
        self.flush_due()

    def close(self, end: End) -> None:
        self.flush()


class HeldCheckpointFiles(CheckpointFiles):
    """Checkpoint files written only while the attempt still holds the run, so an attempt that
    was taken over does not write into the folder its successor resumes from."""

    def __init__(self, manager: CheckpointManager, sink: Sink, store: StoreSink) -> None:
        super().__init__(manager, sink)
        self.store = store

    def save(self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float]) -> None:
        self.store.check_held()
        super().save(state, epoch=epoch, metrics=metrics)
