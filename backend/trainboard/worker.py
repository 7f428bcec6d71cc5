"""A worker: claims queued runs and executes each in a warm child process, holding the run's
lease by heartbeats from this process, which never trains and so never misses a beat."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import session_scope
from trainboard.models import RunStatus
from trainboard.store import queue
from trainboard.store.workers import heartbeat_worker, register_worker

WORKER_HEARTBEAT_SECONDS = 2.0


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = (
            " (often out of memory)"
            if name == "SIGKILL"
            else " (a crash in native code)"
            if name == "SIGSEGV"
            else ""
        )
        return f"The run's process was killed by {name}{hint}; the full log has what it printed."
    return (
        f"The run's process exited with code {returncode} before recording a result; see the log."
    )


def resolve_worker_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@dataclass
class Worker:
    settings: Settings
    engine: Engine
    device: str = "cpu"
    id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    stopping: threading.Event = field(default_factory=threading.Event)
    _warm: subprocess.Popen[bytes] | None = None
    _last_beat: float = 0.0

    @property
    def heartbeat_seconds(self) -> float:
        return max(0.05, min(1.0, self.settings.lease_seconds / 4))

    def register(self) -> None:
        with session_scope(self.engine) as session:
            register_worker(
                session,
                worker_id=self.id,
                host=socket.gethostname(),
                pid=os.getpid(),
                device=self.device,
            )

    def _beat(self, status: str, run_id: int | None = None, force: bool = False) -> None:
        if force or time.monotonic() - self._last_beat >= WORKER_HEARTBEAT_SECONDS:
            with session_scope(self.engine) as session:
                heartbeat_worker(session, worker_id=self.id, status=status, run_id=run_id)
            self._last_beat = time.monotonic()

    def prepare_child(self) -> subprocess.Popen[bytes]:
        """Start the next run's process now, so it has imported torch before a run arrives."""
        if self._warm is None or self._warm.poll() is not None:
            self._warm = subprocess.Popen(
                [sys.executable, "-m", "trainboard.runner"],
                stdin=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C meant for the worker must not hit the run
            )
        return self._warm

    def run_once(self) -> bool:
        """Recover lost runs, then claim and execute one queued run; False when none was queued."""
        with session_scope(self.engine) as session:
            queue.recover_expired_runs(session)
            claim = queue.claim_next_run(
                session,
                worker_id=self.id,
                device=self.device,
                lease_seconds=self.settings.lease_seconds,
            )
        if claim is None:
            self._beat("idle")
            return False
        run_id, attempt = claim
        self._beat("busy", run_id, force=True)
        child = self.prepare_child()
        self._warm = None
        run_dir = self.settings.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        job = {
            "run_id": run_id,
            "attempt": attempt,
            "device": self.device,
            "log_path": str(run_dir / "run.log"),
            "settings": self.settings.model_dump_json(),
        }
        assert child.stdin is not None
        child.stdin.write((json.dumps(job) + "\n").encode())
        child.stdin.close()
        if not self.stopping.is_set():
            self.prepare_child()  # the next run's process warms up while this one trains
        returncode = self._supervise(child, run_id, attempt)
        if returncode != 0:
            with session_scope(self.engine) as session:
                queue.finish_run(
                    session,
                    run_id=run_id,
                    attempt=attempt,
                    status=RunStatus.failed,
                    error=describe_exit(returncode),
                )
        self._beat("idle", force=True)
        return True

    def _supervise(self, child: subprocess.Popen[bytes], run_id: int, attempt: int) -> int:
        signalled_cancel = signalled_stop = False
        while True:
            try:
                return child.wait(timeout=self.heartbeat_seconds)
            except subprocess.TimeoutExpired:
                pass
            with session_scope(self.engine) as session:
                cancel = queue.renew_lease(
                    session,
                    run_id=run_id,
                    attempt=attempt,
                    lease_seconds=self.settings.lease_seconds,
                )
            self._beat("busy", run_id)
            if cancel is None:  # taken over by another worker: this attempt must not go on
                child.kill()
                return child.wait()
            if cancel and not signalled_cancel:
                child.send_signal(signal.SIGUSR1)
                signalled_cancel = True
            if self.stopping.is_set() and not signalled_stop:
                child.send_signal(signal.SIGTERM)  # the run stops at its next step and is requeued
                signalled_stop = True

    def serve_forever(self) -> None:
        """Repeat run_once until asked to stop, waiting `poll_seconds` when the queue is empty."""
        self.register()
        self.prepare_child()
        try:
            while not self.stopping.is_set():
                if not self.run_once():
                    self.stopping.wait(self.settings.poll_seconds)
        finally:
            if self._warm is not None and self._warm.poll() is None:
                self._warm.kill()  # it holds no run yet
                self._warm.wait()
            self._beat("stopped", force=True)
