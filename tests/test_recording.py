"""Recording a claimed run on SQLite and PostgreSQL: checkpoint rows commit with the metrics
they cover, their files are fsynced just before, a resumed attempt starts from the latest
committed one, retention deletes a file only after its row is gone, and an attempt that was
taken over writes no checkpoint file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine
from trainboard.config import Settings
from trainboard.db import session_scope
from trainboard.models import RunStatus
from trainboard.store import queue
from trainboard.store.checkpoints import list_checkpoints
from trainboard.store.files import folder_bytes
from trainboard.store.metrics import read_series
from trainboard.store.runs import create_job_run, get_run
from trainboard.training.checkpoint import load_checkpoint
from trainboard.training.sinks import EpochReport
from trainboard.worker.recording import LocalRecording, LocalRecordings
from trainboard.worker.storesink import RunTakenOver, StoreSink

from tests.helpers import tiny_run_spec

KEEP_TWO = {"every_epochs": 1, "keep_last": 2, "keep_best": 0}


def claimed_run(engine: Engine) -> int:
    with session_scope(engine) as session:
        run_id = create_job_run(session, spec=tiny_run_spec(checkpoint=KEEP_TWO)).id
    assert claim(engine) == (run_id, 1)
    return run_id


def claim(engine: Engine) -> tuple[int, int] | None:
    with session_scope(engine) as session:
        return queue.claim_next_run(session, worker_id="w", device="cpu", lease_seconds=30)


def requeue(engine: Engine, run_id: int, attempt: int) -> None:
    """What lease recovery does for a worker that died: the run goes back to the queue."""
    with session_scope(engine) as session:
        assert queue.finish_run(session, run_id=run_id, attempt=attempt, status=RunStatus.queued)


def record_epoch(recording: LocalRecording, epoch: int) -> None:
    """What a recorder does for one epoch of a run that checkpoints every epoch."""
    metrics = {"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch}
    recording.sink.log_epoch(EpochReport(epoch, 10, metrics, None, {}))
    state = {"epoch": epoch, "model_state_dict": {}, "metrics": metrics}
    recording.checkpoints.save(state, epoch=epoch, metrics=metrics)


def files(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.pt"))


def stored_epochs(engine: Engine, run_id: int) -> list[int]:
    with session_scope(engine) as session:
        series = read_series(session, run_id=run_id, keys=["val_loss"], max_points=100)
    return series["val_loss"].steps


def checkpoint_rows(engine: Engine, run_id: int) -> list[str]:
    with session_scope(engine) as session:
        return [row.name for row in list_checkpoints(session, run_id=run_id)]


def three_epochs_unflushed(engine: Engine, settings: Settings) -> tuple[int, LocalRecording]:
    """A claimed run's recording that commits only when flushed, after epochs 1 to 3 (the
    first epoch's progress committed at once, its checkpoint not)."""
    run_id = claimed_run(engine)
    recording = LocalRecordings(settings, engine, batch_seconds=3600).open(run_id, 1, "cpu")
    for epoch in (1, 2, 3):
        record_epoch(recording, epoch)
    return run_id, recording


def opened_path(fd: int) -> Path:
    return Path(os.readlink(f"/proc/self/fd/{fd}"))


def test_a_resumed_attempt_starts_from_the_last_committed_checkpoint(
    engine: Engine, home: Path
) -> None:
    settings = Settings(home=home)
    run_id, first = three_epochs_unflushed(engine, settings)
    folder = settings.run_dir(run_id) / "checkpoints"
    assert files(folder) == ["epoch-0001", "epoch-0002", "epoch-0003"]  # rows not yet gone
    first.store.flush()
    assert files(folder) == ["epoch-0002", "epoch-0003"]
    with session_scope(engine) as session:  # the size recorded is the folder's after deletes
        recorded = get_run(session, run_id=run_id).disk_bytes
    assert recorded == folder_bytes(settings.run_dir(run_id)) > 0
    for epoch in (4, 5):
        record_epoch(first, epoch)
    # The worker dies here: epochs 4 and 5 have files but neither rows nor metrics. The files
    # their retention dropped stay, since the committed rows still point at them.
    assert files(folder) == ["epoch-0002", "epoch-0003", "epoch-0004", "epoch-0005"]
    requeue(engine, run_id, 1)
    assert claim(engine) == (run_id, 2)

    second = LocalRecordings(settings, engine).open(run_id, 2, "cpu")
    assert second.job.resume_from == folder / "epoch-0003.pt"
    assert load_checkpoint(second.job.resume_from)["epoch"] == 3
    assert stored_epochs(engine, run_id) == [1, 2, 3]  # no epoch before it lacks metrics
    for epoch in (4, 5, 6):
        record_epoch(second, epoch)
    assert checkpoint_rows(engine, run_id) == ["epoch-0005", "epoch-0006"] == files(folder)
    assert stored_epochs(engine, run_id) == [1, 2, 3, 4, 5, 6]


def test_checkpoint_files_are_fsynced_once_a_batch_before_their_rows_commit(
    engine: Engine, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    saving: list[Path] = []
    monkeypatch.setattr(os, "fsync", lambda fd: saving.append(opened_path(fd)))
    run_id, recording = three_epochs_unflushed(engine, Settings(home=home))
    assert saving == []  # saving alone syncs nothing

    synced: list[tuple[str, list[str]]] = []  # each fsync's file, and the rows at that moment

    def fsync(fd: int) -> None:
        synced.append((opened_path(fd).name, checkpoint_rows(engine, run_id)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    recording.store.flush()
    # The files the rows will list, the folder that names them and the run's folder that
    # names it; not the file retention dropped. All before the rows commit.
    names = ["epoch-0002.pt", "epoch-0003.pt", "checkpoints", str(run_id)]
    assert sorted(synced) == sorted((name, []) for name in names)
    assert checkpoint_rows(engine, run_id) == ["epoch-0002", "epoch-0003"]


def test_a_checkpoint_whose_fsync_failed_is_never_listed(
    engine: Engine, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=home)
    run_id, recording = three_epochs_unflushed(engine, settings)
    folder = settings.run_dir(run_id) / "checkpoints"
    real_fsync = os.fsync
    failed: list[Path] = []

    def fsync(fd: int) -> None:
        # As Linux does: a lost write is reported once; the next fsync of the file passes.
        if opened_path(fd).name == "epoch-0003.pt" and not failed:
            failed.append(opened_path(fd))
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="Input/output"):
        recording.store.flush()
    recording.release()  # what a worker does next: write what is pending
    # The batch's files may be lost, so no row lists them; the metrics are all there.
    assert checkpoint_rows(engine, run_id) == [] == files(folder)
    assert stored_epochs(engine, run_id) == [1, 2, 3]


def test_an_attempt_that_was_taken_over_writes_no_checkpoint_file(
    engine: Engine, home: Path
) -> None:
    settings = Settings(home=home)
    run_id = claimed_run(engine)
    folder = settings.run_dir(run_id) / "checkpoints"
    first = LocalRecordings(settings, engine).open(run_id, 1, "cpu")
    record_epoch(first, 1)
    requeue(engine, run_id, 1)
    assert claim(engine) == (run_id, 2)  # another worker holds the run now
    with pytest.raises(RunTakenOver):
        first.checkpoints.save({"epoch": 2, "model_state_dict": {}}, epoch=2, metrics={})
    assert files(folder) == ["epoch-0001"]
    assert checkpoint_rows(engine, run_id) == ["epoch-0001"]


def test_a_batch_shows_the_first_epoch_at_once_and_the_rest_when_due(engine: Engine) -> None:
    run_id = claimed_run(engine)
    store = StoreSink(engine, run_id, 1, batch_seconds=3600)
    store.log_epoch(EpochReport(1, 3, {"val_loss": 1.0}, None, {}))
    assert stored_epochs(engine, run_id) == [1]  # the run has visibly started
    store.log_epoch(EpochReport(2, 3, {"val_loss": 0.5}, None, {}))
    store.flush_due()
    assert stored_epochs(engine, run_id) == [1]  # batched: not due before batch_seconds
    store.batch_seconds = 0  # as if the batch's time had passed
    store.flush_due()
    assert stored_epochs(engine, run_id) == [1, 2]
