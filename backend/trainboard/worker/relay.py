"""The server's side of remote workers: each attempt a remote worker trains is recorded here,
through the same local adapter (`LocalRecordings`) as a worker on this machine, fed by what
the worker sends over HTTP instead of what a child sends down a pipe.

    claim      → open the attempt's recording (its Job goes back to the worker)
    reports    → numbered batches of the child's messages (steps, epochs, its end), applied in
                 order through a `Recorder`; a batch sent again after a lost answer is skipped
    checkpoint → a file checked (size, sha256, loads with weights_only=True), then saved as
                 the local worker saves it (atomic file, retention, rows)
    end        → the status the end calls for, once

Reports travel as `torch.save` files of plain values and tensors (`wire`), read back with
`weights_only=True`: nothing a worker sends is unpickled. Every write is guarded by the attempt,
so a worker whose run was taken over gets 409 and writes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainboard.db import reader, session_scope
from trainboard.store import queue
from trainboard.training.exits import End, Failure, RunTakenOver
from trainboard.worker.channel import Recorder
from trainboard.worker.recording import LocalRecording, LocalRecordings
from trainboard.worker.wire import message_from_wire


@dataclass
class RelayedAttempt:
    """One remote attempt's recording on the server, and what of it has been applied."""

    recording: LocalRecording
    recorder: Recorder
    applied: int = 0  # the last report batch applied
    saved: set[int] = field(default_factory=set)  # epochs whose checkpoint is kept
    pruned: bool = False  # a sweep's pruner asked it to stop (told with the next lease)
    log_bytes: int = 0  # how much of the worker's log the run's log has
    lock: threading.Lock = field(default_factory=threading.Lock)


class Relay:
    """The attempts of remote workers that this server records, opened on claim (or on their
    first report after a restart of the server) and closed at their end."""

    def __init__(self, recordings: LocalRecordings) -> None:
        self.recordings = recordings
        self._attempts: dict[tuple[int, int], RelayedAttempt] = {}
        self._lock = threading.Lock()

    def _check_held(self, run_id: int, attempt: int) -> None:
        with session_scope(reader(self.recordings.engine)) as session:
            if not queue.holds_run(session, run_id=run_id, attempt=attempt):
                raise RunTakenOver(f"run {run_id} attempt {attempt} was taken over")

    def open(self, run_id: int, attempt: int, device: str) -> RelayedAttempt:
        """The attempt's recording, opened once, and only while the attempt holds its run
        (RunTakenOver otherwise); raises when its spec can no longer run."""
        self._check_held(run_id, attempt)
        with self._lock:
            found = self._attempts.get((run_id, attempt))
            if found is None:
                recording = self.recordings.open(run_id, attempt, device)
                recorder = Recorder(recording.sink, recording.checkpoints, recording.flush_due)
                found = self._attempts[(run_id, attempt)] = RelayedAttempt(recording, recorder)
                if recording.trial is not None:
                    relayed = found
                    recording.trial.stop = lambda: setattr(relayed, "pruned", True)
            return found

    def append_log(self, run_id: int, attempt: int, offset: int, data: bytes, log: Path) -> None:
        """Append the bytes of the worker's log that start at `offset`, skipping what the run's
        log already has of them (a chunk sent again)."""
        relayed = self.open(run_id, attempt, "remote")
        with relayed.lock:
            fresh = data[max(0, relayed.log_bytes - offset) :]
            if offset + len(data) <= relayed.log_bytes or not fresh:
                return
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as file:
                file.write(fresh)
            relayed.log_bytes = offset + len(data)

    def pruned(self, run_id: int, attempt: int) -> bool:
        """Whether a sweep's pruner asked the attempt to stop."""
        with self._lock:
            found = self._attempts.get((run_id, attempt))
        return found is not None and found.pruned

    def report(self, run_id: int, attempt: int, batch: int, messages: list[Any]) -> None:
        """Apply report batch number `batch` (batches come in order; one already applied is
        skipped). Raises RunTakenOver when another attempt holds the run."""
        relayed = self.open(run_id, attempt, "remote")
        with relayed.lock:
            if batch <= relayed.applied:
                return
            for message in messages:
                relayed.recorder.handle(message_from_wire(message))
            relayed.recording.store.flush()  # committed before the worker forgets them
            relayed.applied = batch

    def save_checkpoint(
        self, run_id: int, attempt: int, state: dict[str, Any], epoch: int, metrics: dict[str, Any]
    ) -> None:
        """Keep the checkpoint of `epoch` as a local worker keeps it (once per attempt)."""
        relayed = self.open(run_id, attempt, "remote")
        with relayed.lock:
            if epoch in relayed.saved:
                return
            relayed.recording.store.flush()  # the epoch's rows before its checkpoint's
            relayed.recording.checkpoints.save(state, epoch=epoch, metrics=metrics)
            relayed.saved.add(epoch)

    def end(self, run_id: int, attempt: int, end: End) -> str | None:
        """Record the attempt's end; its run's status, or None when another attempt holds it."""
        relayed = self.open(run_id, attempt, "remote")
        with relayed.lock:
            relayed.recording.release()
            if relayed.recording.trial is not None:
                end = relayed.recording.trial.final(end)
        with self._lock:
            self._attempts.pop((run_id, attempt), None)
        status = self.recordings.end(run_id, attempt, end)
        return None if status is None else str(status)

    def drop(self, run_id: int, attempt: int | None = None) -> None:
        """Forget an attempt that lost its run (every attempt of the run without `attempt`):
        its files are closed and a sweep trial's reporter stopped."""
        with self._lock:
            keys = [k for k in self._attempts if k[0] == run_id and attempt in (None, k[1])]
            dropped = [self._attempts.pop(k) for k in keys]
        for relayed in dropped:
            relayed.recording.release()
            if relayed.recording.trial is not None:
                relayed.recording.trial.close(Failure("the attempt lost its run"))
