"""Where an attempt's results are recorded: metrics and progress, TensorBoard event files,
checkpoint files and rows, and the status the run ends with.

A worker and `trainboard train` talk to this side through one port, `Recordings` (open an
attempt's `Recording`, record its end). `LocalRecordings`, this module's adapter, writes this
machine's database, TensorBoard files and checkpoint folder; a worker that records through the
server over HTTP is another adapter of the same port."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.jsonsafe import finite_or_null
from trainboard.models import RunKind, RunStatus
from trainboard.store import queue
from trainboard.store.checkpoints import committed_checkpoints
from trainboard.store.files import folder_bytes
from trainboard.store.runs import get_run
from trainboard.store.sweeps import get_sweep
from trainboard.store.workers import upload_data_info
from trainboard.training.checkpoint import CheckpointManager
from trainboard.training.exits import End, Exit, Failure
from trainboard.training.runnable import check_runnable, dataset_info
from trainboard.training.sinks import (
    CheckpointFiles,
    CheckpointWriter,
    FanOut,
    Sink,
    TensorBoardSink,
)
from trainboard.training.spec import RunSpec, spec_paths
from trainboard.worker.job import Job
from trainboard.worker.storesink import (
    HeldCheckpointFiles,
    RunTakenOver,
    StoreSink,
)

if TYPE_CHECKING:
    from trainboard.sweeps.reporter import TrialReporter


class Recording(Protocol):
    """One attempt's recording side: the job it trains, and where its reports go."""

    job: Job
    sink: Sink
    checkpoints: CheckpointWriter
    trial: TrialReporter | None  # a sweep trial's link to its study

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


@dataclass
class LocalRecording:
    """An attempt recorded on this machine: database rows, TensorBoard files, checkpoints."""

    job: Job
    store: StoreSink
    tensorboard: TensorBoardSink
    sink: Sink
    checkpoints: CheckpointFiles
    trial: TrialReporter | None = None

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
            try:
                self.tensorboard.events.close()  # closing twice is harmless
            except OSError:  # a full disk: the run's end says what failed
                traceback.print_exc()


EXIT_STATUS = {
    Exit.completed: RunStatus.completed,
    Exit.early_stopped: RunStatus.completed,
    Exit.cancelled: RunStatus.cancelled,
    Exit.diverged: RunStatus.diverged,
    Exit.interrupted: RunStatus.queued,  # back in the queue; the next attempt resumes
    Exit.pruned: RunStatus.pruned,
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
            kind, options, sweep_id = run.kind, run.options, run.sweep_id
            sweep_config = get_sweep(session, sweep_id=sweep_id).config if sweep_id else None
            committed = committed_checkpoints(session, run_id=run_id)
            upload = upload_data_info(session, name=spec.dataset.name)
        # The check the API made when the run was queued: a plugin may have gone since.
        spec = check_runnable(
            spec,
            dataset_info(spec.dataset, upload=upload),
            max_parameters=self.settings.max_model_parameters,
        )
        run_dir = self.settings.run_dir(run_id)
        folder = run_dir / "checkpoints"
        kept = [e for e in committed if (folder / f"{e.name}.pt").is_file()]
        manager = CheckpointManager(folder, spec.checkpoint, kept, deferred=True)
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
        trial = None
        if sweep_id is not None and sweep_config is not None and options:
            from trainboard.sweeps.reporter import TrialReporter
            from trainboard.sweeps.space import SweepCreate

            url = self.engine.url.render_as_string(hide_password=False)
            request = SweepCreate.model_validate(sweep_config)
            trial = TrialReporter(url, sweep_id, request, int(options["trial"]))
        sink = FanOut(store, tensorboard, *([trial] if trial else []))
        job = Job(
            run_id=run_id,
            attempt=attempt,
            device=device,
            spec=spec.model_dump(mode="json"),
            run_dir=run_dir,
            uploads_dir=self.settings.uploads_dir,
            resume_from=manager.latest_path() if kind == RunKind.job else None,
            start_epoch=start_epoch,
            max_parameters=self.settings.max_model_parameters,
            torch_threads=self.settings.torch_threads,
            kind=kind,
            options=options,
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        return LocalRecording(
            job, store, tensorboard, sink, HeldCheckpointFiles(manager, sink, store), trial
        )

    def end(self, run_id: int, attempt: int, end: End) -> RunStatus | None:
        if isinstance(end, Failure):
            status, error, summary = RunStatus.failed, end.message, None
        else:
            summary = finite_or_null(end.summary)
            status, error = EXIT_STATUS[end.exit], end.message or None
            if status == RunStatus.completed:
                error = None  # a completed check's message is in its summary
            if end.exit is Exit.early_stopped:
                error, summary = None, {**summary, "early_stopped": end.message}
        disk_bytes = folder_bytes(self.settings.run_dir(run_id))
        with session_scope(self.engine) as session:
            if isinstance(end, Failure) and end.retry:  # a lost rank: retried unless cancelled
                if queue.retries_left(session, run_id=run_id, attempt=attempt):
                    status, error = RunStatus.queued, None  # the next attempt resumes
                else:
                    error = f"{end.message}; the run used up its retries"
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
            sweep_id = get_run(session, run_id=run_id).sweep_id
        if sweep_id is not None and status != RunStatus.queued:
            from trainboard.sweeps.driver import drive

            try:
                drive(self.engine, sweep_id)  # tell the study, queue the next trial
            except Exception:  # the server's keeper drives it again shortly
                traceback.print_exc()
        return status
