"""A worker: claims queued runs and trains each in a warm child process. This process never
trains: it holds the run's lease on a thread of its own and records what the child sends down
its channel, so the training loop never waits on a disk or a database.

`run_once` is one turn of the loop (recover lost runs, claim one, train it to its end), which
tests call directly; `serve_forever` repeats it, backing off while the queue stays empty."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.training.exits import End, Failure, RecordingLost
from trainboard.worker.child import Child, describe_exit
from trainboard.worker.claims import LocalQueue, WorkerInfo, WorkQueue

if TYPE_CHECKING:  # imported when first needed: they load torch (see serve_forever)
    from trainboard.worker.channel import Inbox, Recorder
    from trainboard.worker.recording import Recordings

WORKER_HEARTBEAT_SECONDS = 2.0
# An idle worker looks at the queue every poll_seconds for this long after its last run, so a
# run submitted soon after another starts as promptly; then it backs off, doubling its wait.
IDLE_GRACE_SECONDS = 30.0
IDLE_WAIT_MAX_SECONDS = 2.0


def resolve_worker_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def device_capacity(device: str) -> int:
    """The most devices one run may train on with this worker: every GPU for `cuda`, one for
    `cuda:N`, and on the CPU one process per core it may use."""
    if device == "cuda":
        import torch

        return max(1, torch.cuda.device_count())
    if device.startswith("cuda:"):
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Worker:
    """Claims runs from `queue` (by default this machine's database) and records them through
    `recordings` (by default this machine's database and files); a remote worker has both
    on the server's REST API instead (`worker.remote`)."""

    settings: Settings
    engine: Engine | None
    device: str = "cpu"
    devices: int = 0  # the most devices a run it claims may need; 0: device_capacity
    id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    stopping: threading.Event = field(default_factory=threading.Event)
    recordings: Recordings | None = None
    queue: WorkQueue | None = None
    max_runs: int | None = None  # serve_forever returns after this many runs
    _warm: Child | None = None
    _last_beat: float = -float("inf")

    def __post_init__(self) -> None:
        self.devices = self.devices or device_capacity(self.device)
        if self.queue is None:
            assert self.engine is not None, "a worker without a database needs a queue"
            self.queue = LocalQueue(self.settings, self.engine)
        self.info = WorkerInfo(self.id, self.device, self.devices)

    def recording_side(self) -> Recordings:
        """Where runs are recorded: by default this machine's database and files."""
        if self.recordings is None:
            from trainboard.worker.recording import LocalRecordings
            from trainboard.worker.storesink import BATCH_SECONDS

            assert self.engine is not None
            self.recordings = LocalRecordings(self.settings, self.engine, BATCH_SECONDS)
        return self.recordings

    @property
    def work(self) -> WorkQueue:
        assert self.queue is not None
        return self.queue

    @property
    def heartbeat_seconds(self) -> float:
        return max(0.05, min(1.0, self.work.lease_seconds / 4))

    def register(self) -> None:
        self.work.register(self.info)

    def _beat(self, status: str, run_id: int | None = None, force: bool = False) -> None:
        if force or time.monotonic() - self._last_beat >= WORKER_HEARTBEAT_SECONDS:
            self.work.beat(self.info, status, run_id)
            self._last_beat = time.monotonic()

    def prepare_child(self) -> Child:
        """Start the next run's process now, so it has imported torch before a run arrives."""
        if self._warm is None or self._warm.process.poll() is not None:
            if self._warm is not None:
                self._warm.channel.close()
            self._warm = Child.start()
        return self._warm

    def run_once(self, now: float | None = None) -> bool:
        """Recover runs whose lease ran out by `now` (default: the clock), then claim one queued
        run and train it to its end; False when none was queued. Call it from a thread that
        outlives the worker: the kernel stops a child whose starting thread has ended
        (`lifetime.follow_parent`)."""
        claim = self.work.claim(self.info, time.time() if now is None else now)
        if claim is None:
            self._beat("idle")
            return False
        run_id, attempt = claim
        self._beat("busy", run_id, force=True)
        try:
            self._train(run_id, attempt)
        finally:
            self._beat("idle", force=True)
        return True

    def _train(self, run_id: int, attempt: int) -> None:
        """Hand the claimed attempt to a child, record what it sends, then record its end."""
        from trainboard.worker.channel import Inbox, Recorder

        recordings = self.recording_side()
        try:
            recording = recordings.open(run_id, attempt, self.device)
        except RecordingLost as exc:  # a remote worker's server went away: its lease lapses
            print(f"run {run_id} attempt {attempt}: {exc}", flush=True)
            return
        except Exception as exc:  # the spec no longer validates; the warm child stays for later
            recordings.end(run_id, attempt, Failure.from_exception(exc))
            return
        child = self.prepare_child()
        self._warm = None
        assert child.process.stdin is not None
        child.process.stdin.write(recording.job.to_line())
        child.process.stdin.close()
        if recording.trial is not None:  # its pruner stops the child as a cancel does
            recording.trial.stop = lambda: child.process.send_signal(signal.SIGUSR1)
        if not self.stopping.is_set():
            self.prepare_child()  # the next run's process warms up while this one trains
        recorder = Recorder(recording.sink, recording.checkpoints, recording.flush_due)
        inbox = Inbox(child.channel)
        end: End | None = None
        try:
            self._supervise(child.process, inbox, recorder, run_id, attempt)
        except BaseException as exc:
            child.process.kill()
            inbox.discard_rest()  # the reader ends at the child's exit
            child.process.wait()
            if isinstance(exc, RecordingLost):  # another attempt holds the run: write nothing
                print(f"run {run_id} attempt {attempt}: {exc}; nothing more is written", flush=True)
                return
            if not isinstance(exc, Exception):
                raise
            traceback.print_exc()  # recording failed (a full disk, say): the run cannot go on
            end = Failure(f"recording the run failed: {Failure.from_exception(exc).message}")
        finally:
            child.channel.close()
            recording.release()
        end = end or recorder.end or Failure(describe_exit(child.process.wait()))
        if recording.trial is not None:
            end = recording.trial.final(end)
        recordings.end(run_id, attempt, end)
        child.process.wait()  # after its end is recorded: a torch process takes a while to exit

    def _supervise(
        self,
        child: subprocess.Popen[bytes],
        inbox: Inbox,
        recorder: Recorder,
        run_id: int,
        attempt: int,
    ) -> None:
        """Record what the child sends until its channel closes. The lease is held on a thread
        of its own, so a long write (a big model's checkpoint) never lets it lapse. Raises
        RunTakenOver when another attempt took the run over."""
        from trainboard.tracking.system import SYSTEM_SECONDS, SystemSampler
        from trainboard.worker.channel import record
        from trainboard.worker.storesink import BATCH_SECONDS, RunTakenOver

        done, lost = threading.Event(), threading.Event()
        holder = threading.Thread(
            target=self._hold_lease,
            args=(child, run_id, attempt, done, lost),
            name="lease",
            daemon=True,
        )
        holder.start()

        # The child's CPU and memory (its data loader processes too), recorded on this thread
        # with what the child sends: step = seconds into the attempt.
        system = SystemSampler(child.pid)

        def check() -> None:
            if lost.is_set():
                raise RunTakenOver(f"run {run_id} attempt {attempt} was taken over")
            points = system.sample() if recorder.end is None else []  # none after its end
            if points:
                recorder.sink.log_step(points[0][1], {key: value for key, _, value, _ in points})

        try:
            record(
                inbox,
                recorder,
                tick=check,
                every=min(self.heartbeat_seconds, SYSTEM_SECONDS),
                flush_every=BATCH_SECONDS,
            )
        finally:
            done.set()
            holder.join()
        check()  # lost while the channel was ending: no end may be written either

    def _hold_lease(
        self,
        child: subprocess.Popen[bytes],
        run_id: int,
        attempt: int,
        done: threading.Event,
        lost: threading.Event,
    ) -> None:
        """Renew the lease every heartbeat until `done`, passing on cancel and stop requests;
        when the run was taken over, set `lost` and kill the child."""
        signalled_cancel = signalled_stop = False
        while not done.wait(self.heartbeat_seconds):
            try:
                cancel = self.work.renew(run_id, attempt)
                self._beat("busy", run_id)
            except Exception:  # a database or network hiccup: the lease has slack till the next
                traceback.print_exc()
                continue
            if cancel is None:
                lost.set()
                child.kill()
                return
            if cancel and not signalled_cancel:
                child.send_signal(signal.SIGUSR1)
                signalled_cancel = True
            if self.stopping.is_set() and not signalled_stop:
                child.send_signal(signal.SIGTERM)  # the run stops at its next step and is requeued
                signalled_stop = True

    def serve_forever(self) -> None:
        """Repeat run_once until asked to stop. While the queue is empty the worker looks every
        `poll_seconds` for IDLE_GRACE_SECONDS after its last run, then backs off, doubling its
        wait up to IDLE_WAIT_MAX_SECONDS; a claimed run resets it."""
        self.register()
        self.prepare_child()
        self.recording_side()  # its imports (the loop's modules too) while the child warms up
        wait, idle_since = self.settings.poll_seconds, time.monotonic()
        runs = 0
        try:
            while not self.stopping.is_set():
                if self.run_once():
                    runs += 1
                    if self.max_runs is not None and runs >= self.max_runs:
                        return
                    wait, idle_since = self.settings.poll_seconds, time.monotonic()
                    continue
                self.stopping.wait(wait)
                if time.monotonic() - idle_since > IDLE_GRACE_SECONDS:
                    wait = min(wait * 2, max(IDLE_WAIT_MAX_SECONDS, self.settings.poll_seconds))
        finally:
            self.close()

    def close(self) -> None:
        """Stop the warm child (it holds no run yet) and mark this worker stopped."""
        if self._warm is not None:
            self._warm.discard()
            self._warm = None
        self._beat("stopped", force=True)
