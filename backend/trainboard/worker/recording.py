"""Where an attempt's results are recorded: metrics and progress, TensorBoard event files,
checkpoint files and rows, and the status the run ends with.

A worker and `trainboard train` talk to this side through one port, `Recordings` (open an
attempt's `Recording`, record its end). `LocalRecordings`, this module's adapter, writes this
machine's database, TensorBoard files and checkpoint folder; a worker that records through the
server over HTTP is another adapter of the same port."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.models import RunStatus
from trainboard.store import queue
from trainboard.store.checkpoints import committed_checkpoints, sync_checkpoints
from trainboard.store.files import folder_bytes
from trainboard.store.metrics import add_metrics
from trainboard.store.runs import get_run
from trainboard.store.workers import upload_data_info
from trainboard.training.checkpoint import CheckpointEntry, CheckpointManager
from trainboard.training.exits import End, Exit, Failure, RecordingLost
from trainboard.training.runnable import check_runnable, dataset_info, validate_names
from trainboard.training.sinks import (
    CheckpointFiles,
    CheckpointWriter,
    EpochReport,
    FanOut,
    Sink,
    TensorBoardSink,
)
from trainboard.training.spec import RunSpec, spec_paths
from trainboard.worker.job import Job

STEP_FLUSH_SECONDS = 1.0
BATCH_SECONDS = 0.25


class RunTakenOver(RecordingLost):
    """Another attempt holds the run now; this one must stop without writing."""


class Recording(Protocol):
    """One attempt's recording side: the job it trains, and where its reports go."""

    job: Job
    sink: Sink
    checkpoints: CheckpointWriter

    def flush_due(self) -> None:
        """Write what has waited long enough (called between reports and on a timer)."""

    def release(self) -> None:
        """Write what is still pending and close files, also after an error."""


class Recordings(Protocol):
    """The port between whatever trains a claimed run and wherever its results are kept."""

    def open(self, run_id: int, attempt: int, device: str) -> Recording:
        """The recording of a claimed attempt; raises when its spec can no longer run."""

    def end(self, run_id: int, attempt: int, end: End) -> RunStatus | None:
        """Give the run the status `end` calls for; None when another attempt holds it now."""


class StoreSink:
    """Writes metrics, progress and checkpoint rows to the database, guarded by the attempt.

    With `batch_seconds` 0, each epoch and each list of checkpoints commits at once. Otherwise
    writes wait until `batch_seconds` have passed since the last commit, so a burst of short
    epochs lands in a few transactions instead of several each; the recorder calls `flush_due`
    between messages, so nothing waits much longer. Step points wait up to STEP_FLUSH_SECONDS
    either way.

    Checkpoint rows commit together with the metrics of the epochs they cover, and a resumed
    attempt starts from the latest row (`committed_checkpoints`), so resuming never skips an
    epoch whose metrics were not stored. Files that retention drops are deleted only once the
    list without them is committed (`files.delete_forgotten`)."""

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
                    disk_bytes=None if self.run_dir is None else folder_bytes(self.run_dir),
                )
            if ok and self.checkpoints is not None:
                ok = sync_checkpoints(
                    session, run_id=self.run_id, attempt=self.attempt, entries=self.checkpoints
                )
            if not ok:
                raise RunTakenOver(f"run {self.run_id} attempt {self.attempt} was taken over")
        if self.checkpoints is not None and self.files is not None:
            self.files.delete_forgotten()
        self.points, self.progress, self.checkpoints = [], None, None
        self.last_flush = self.held_at = time.monotonic()

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


@dataclass
class LocalRecording:
    """An attempt recorded on this machine: database rows, TensorBoard files, checkpoints."""

    job: Job
    store: StoreSink
    tensorboard: TensorBoardSink
    sink: Sink
    checkpoints: CheckpointFiles

    def flush_due(self) -> None:
        self.store.flush_due()

    def release(self) -> None:
        try:
            self.store.flush()
        except RunTakenOver:
            pass  # the successor records from here on
        except Exception:
            traceback.print_exc()  # nothing more can be stored; the run's end says why
        finally:
            self.tensorboard.events.close()  # closing twice is harmless


EXIT_STATUS = {
    Exit.completed: RunStatus.completed,
    Exit.early_stopped: RunStatus.completed,
    Exit.cancelled: RunStatus.cancelled,
    Exit.diverged: RunStatus.diverged,
    Exit.interrupted: RunStatus.queued,  # back in the queue; the next attempt resumes
}


@dataclass
class LocalRecordings:
    """The local adapter of `Recordings`. `batch_seconds`: see StoreSink."""

    settings: Settings
    engine: Engine
    batch_seconds: float = 0.0

    def open(self, run_id: int, attempt: int, device: str) -> LocalRecording:
        """The sinks and checkpoint files of a claimed run, and where it resumes: its latest
        committed checkpoint. Raises if its spec no longer validates (a plugin was
        uninstalled, say); the caller ends the run with that failure."""
        with session_scope(reader(self.engine)) as session:
            run = get_run(session, run_id=run_id)
            spec, start_epoch = RunSpec.model_validate(run.spec), run.epoch
            committed = committed_checkpoints(session, run_id=run_id)
            upload = upload_data_info(session, name=spec.dataset.name)
        # The check the API made when the run was queued: a plugin may have gone since.
        spec = validate_names(spec)
        check_runnable(
            spec,
            dataset_info(spec.dataset, upload=upload),
            max_parameters=self.settings.max_model_parameters,
        )
        run_dir = self.settings.run_dir(run_id)
        folder = run_dir / "checkpoints"
        kept = [e for e in committed if (folder / f"{e.name}.pt").is_file()]
        manager = CheckpointManager(folder, spec.checkpoint, kept, defer_deletes=True)
        hparams = {
            k: v
            for k, v in spec_paths(spec.model_dump(mode="json")).items()
            if isinstance(v, int | float | str | bool)
        }
        store = StoreSink(
            self.engine,
            run_id,
            attempt,
            batch_seconds=self.batch_seconds,
            files=manager,
            run_dir=run_dir,
        )
        tensorboard = TensorBoardSink(run_dir / "tensorboard", hparams)
        sink = FanOut(store, tensorboard)
        job = Job(
            run_id=run_id,
            attempt=attempt,
            device=device,
            spec=spec.model_dump(mode="json"),
            run_dir=run_dir,
            uploads_dir=self.settings.uploads_dir,
            resume_from=manager.latest_path(),
            start_epoch=start_epoch,
            max_parameters=self.settings.max_model_parameters,
            torch_threads=self.settings.torch_threads,
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        return LocalRecording(
            job, store, tensorboard, sink, HeldCheckpointFiles(manager, sink, store)
        )

    def end(self, run_id: int, attempt: int, end: End) -> RunStatus | None:
        if isinstance(end, Failure):
            status, error, summary = RunStatus.failed, end.message, None
        else:
            status, error, summary = EXIT_STATUS[end.exit], end.message or None, end.summary
            if end.exit is Exit.early_stopped:
                error, summary = None, {**summary, "early_stopped": end.message}
        disk_bytes = folder_bytes(self.settings.run_dir(run_id))
        with session_scope(self.engine) as session:
            if not queue.finish_run(
                session,
                run_id=run_id,
                attempt=attempt,
                status=status,
                error=error,
                summary=summary,
                disk_bytes=disk_bytes,
            ):
                return None
        return status
