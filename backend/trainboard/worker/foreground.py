"""`trainboard train SPEC.json`: one run trained in this process, start to end, queued and
claimed through the store like any other, so the page and the API see it as they see a
worker's runs."""

from __future__ import annotations

import os

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import session_scope
from trainboard.models import RunStatus
from trainboard.store import queue
from trainboard.store.runs import create_job_run
from trainboard.training.exits import End, Failure, RecordingLost
from trainboard.training.spec import RunSpec
from trainboard.worker.job import run_job
from trainboard.worker.recording import LocalRecordings
from trainboard.worker.stop import StopFlag

WORKER_ID = f"foreground-{os.getpid()}"


def train_in_foreground(settings: Settings, engine: Engine, spec: RunSpec) -> RunStatus | None:
    """Create, claim, train and end a run of `spec` here; its final status, or None when
    another process took it over. Ctrl-C stops it at the next step and puts it back in the
    queue, from where a worker resumes it."""
    with session_scope(engine) as session:
        run_id = create_job_run(session, spec=spec).id or 0
        # Claimed in the same transaction, so no worker can take it first.
        attempt = queue.claim_run(session, run_id=run_id, worker_id=WORKER_ID, device=spec.device)
    assert attempt is not None
    print(f"run {run_id}: {spec.display_name()} -> {settings.run_dir(run_id)}", flush=True)
    stop = StopFlag()
    stop.install_signal_handlers()
    return train_claimed(settings, engine, run_id, attempt, spec.device, stop)


def train_claimed(
    settings: Settings, engine: Engine, run_id: int, attempt: int, device: str, stop: StopFlag
) -> RunStatus | None:
    """Train the attempt this process claimed, here, and record its end (a sweep trial's
    pruner stops it through `stop`)."""
    recordings = LocalRecordings(settings, engine)
    try:
        recording = recordings.open(run_id, attempt, device)
    except Exception as exc:
        end: End = Failure.from_exception(exc)
    else:
        print(recording.job.describe(), flush=True)
        if recording.trial is not None:
            recording.trial.stop = stop.cancel
        try:
            end = run_job(
                recording.job,
                sink=recording.sink,
                checkpoints=recording.checkpoints,
                should_stop=stop,
            )
        except RecordingLost as exc:
            print(f"stopping: {exc}", flush=True)
            return None
        finally:
            recording.release()
        if recording.trial is not None:
            end = recording.trial.final(end)
        if isinstance(end, Failure) and end.retry:  # no worker here to take a retry
            end = Failure(f"{end.message}; run it again with `trainboard train`")
    status = recordings.end(run_id, attempt, end)
    if status is not None:
        print(f"run {run_id} {status.value}" + (f": {end.message}" if end.message else ""))
    return status
