"""Where a worker gets its runs: the `WorkQueue` port (register, heartbeat, claim, renew a lease)
and its local adapter, this machine's database. A remote worker's adapter is the server's REST
API (`worker.remote`)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.store import queue
from trainboard.store.workers import heartbeat_worker, register_worker


@dataclass(frozen=True)
class WorkerInfo:
    """Who claims: the worker's id, its device and how many devices one run may use."""

    id: str
    device: str
    devices: int


class WorkQueue(Protocol):
    """The queue as a worker sees it."""

    @property
    def lease_seconds(self) -> float:
        """How long a claimed run stays this worker's without a renewal."""

    def register(self, worker: WorkerInfo) -> None: ...

    def beat(self, worker: WorkerInfo, status: str, run_id: int | None) -> None:
        """Say the worker is alive, and what it does."""

    def claim(self, worker: WorkerInfo, now: float) -> tuple[int, int] | None:
        """Recover runs whose lease ran out by `now`, then take the next queued run that fits
        the worker: (run id, attempt), or None."""

    def renew(self, run_id: int, attempt: int) -> bool | None:
        """Extend the attempt's lease: whether a cancel was asked for; None once another
        attempt holds the run."""


@dataclass
class LocalQueue:
    """The queue in this machine's database (`store.queue`)."""

    settings: Settings
    engine: Engine

    @property
    def lease_seconds(self) -> float:
        return self.settings.lease_seconds

    def register(self, worker: WorkerInfo) -> None:
        with session_scope(self.engine) as session:
            register_worker(
                session,
                worker_id=worker.id,
                host=socket.gethostname(),
                pid=os.getpid(),
                device=worker.device,
                devices=worker.devices,
            )

    def beat(self, worker: WorkerInfo, status: str, run_id: int | None) -> None:
        with session_scope(self.engine) as session:
            heartbeat_worker(session, worker_id=worker.id, status=status, run_id=run_id)

    def claim(self, worker: WorkerInfo, now: float) -> tuple[int, int] | None:
        # A read first: an idle worker's look at the queue never takes the write lock.
        with session_scope(reader(self.engine)) as session:
            if not queue.has_work(session, now=now, devices=worker.devices):
                return None
        with session_scope(self.engine) as session:
            queue.recover_expired_runs(session, now=now)
            return queue.claim_next_run(
                session,
                worker_id=worker.id,
                device=worker.device,
                lease_seconds=self.settings.lease_seconds,
                now=now,
                devices=worker.devices,
            )

    def renew(self, run_id: int, attempt: int) -> bool | None:
        with session_scope(self.engine) as session:
            return queue.renew_lease(
                session, run_id=run_id, attempt=attempt, lease_seconds=self.settings.lease_seconds
            )
