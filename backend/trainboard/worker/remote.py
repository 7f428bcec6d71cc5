"""A remote worker (`trainboard worker --server URL --token T`): the same `Worker`, child and
channel as on the server's machine, with both of its ports on the server's REST API
(`api/remote.py`) instead of a database: `RemoteQueue` claims and holds leases, and
`RemoteRecordings` sends what the child reports. Its data folder is only scratch space: the
checkpoint a resumed attempt starts from is downloaded into it, the child's log and checkpoint
files pass through it.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainboard.config import Settings
from trainboard.training.exits import End, RecordingLost, RunTakenOver
from trainboard.worker.claims import WorkerInfo
from trainboard.worker.job import Job
from trainboard.worker.remotesink import CheckpointUploader, LogShipper, ReportSender
from trainboard.worker.serverclient import ServerClient, ServerUnreachable
from trainboard.worker.worker import Worker

# How long an idle worker's requests (claim, heartbeat) wait for the server before giving up
# until the next turn; a run's requests wait as long as its lease.
IDLE_PATIENCE = 2.0


@dataclass
class RemoteQueue:
    """The queue behind the server's `/api/remote` routes."""

    client: ServerClient
    lease: float = 30.0  # the server's, as its last claim said
    claimed: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)

    @property
    def lease_seconds(self) -> float:
        return self.lease

    def _who(self, worker: WorkerInfo, status: str, run_id: int | None) -> dict[str, Any]:
        return {
            "worker_id": worker.id,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "device": worker.device,
            "devices": worker.devices,
            "status": status,
            "run_id": run_id,
        }

    def register(self, worker: WorkerInfo) -> None:
        self.beat(worker, "idle", None)

    def beat(self, worker: WorkerInfo, status: str, run_id: int | None) -> None:
        try:
            body = self._who(worker, status, run_id)
            self.client.request(
                "POST", "/api/remote/beat", json=body, patience=IDLE_PATIENCE, wait=10.0
            )
        except ServerUnreachable as exc:
            print(f"heartbeat not sent: {exc}", flush=True)

    def claim(self, worker: WorkerInfo, now: float) -> tuple[int, int] | None:
        body = self._who(worker, "idle", None)
        try:
            # The answer may take a while (the server opens the run's recording); a claim asked
            # again after a lost answer gets the same run.
            answer = self.client.request(
                "POST", "/api/remote/claim", json=body, patience=IDLE_PATIENCE, wait=30.0
            ).json()
        except ServerUnreachable as exc:
            print(f"no claim: {exc}", flush=True)
            return None
        self.lease = float(answer["lease_seconds"])
        job = answer["job"]
        if job is None:
            return None
        key = (int(job["run_id"]), int(job["attempt"]))
        self.claimed[key] = answer
        return key

    def renew(self, run_id: int, attempt: int) -> bool | None:
        path = f"/api/remote/runs/{run_id}/attempts/{attempt}/lease"
        try:
            answer = self.client.request("POST", path, json={}, patience=self.lease / 4)
        except RunTakenOver:
            return None
        return bool(answer.json()["cancel"])


@dataclass
class RemoteRecording:
    """An attempt recorded by the server: the job, and what sends its reports there."""

    job: Job
    sink: ReportSender
    checkpoints: CheckpointUploader
    log: LogShipper
    trial: None = None  # a sweep trial's pruner runs on the server (a cancel reaches us)

    def flush_due(self) -> None:
        self.sink.flush_due()
        self.log.ship()

    def release(self) -> None:
        try:
            self.sink.flush()
            self.log.ship()
        except RecordingLost as exc:  # taken over, or the server is away: nothing more to send
            print(f"run {self.job.run_id} attempt {self.job.attempt}: {exc}", flush=True)


@dataclass
class RemoteRecordings:
    """The `Recordings` port on the server: `scratch` is this machine's data folder."""

    queue: RemoteQueue
    scratch: Path

    @property
    def client(self) -> ServerClient:
        return self.queue.client

    def open(self, run_id: int, attempt: int, device: str) -> RemoteRecording:
        """The claimed attempt's job, with its resume checkpoint downloaded into scratch."""
        claimed = self.queue.claimed.pop((run_id, attempt))
        run_dir = self.scratch / "runs" / str(run_id)
        shutil.rmtree(run_dir, ignore_errors=True)  # an earlier attempt's files are the server's
        resume_from = None
        if claimed.get("resume"):
            resume_from = run_dir / "checkpoints" / f"{claimed['resume']}.pt"
            self.client.download(
                f"/api/remote/runs/{run_id}/checkpoints/{claimed['resume']}",
                resume_from,
                patience=self.queue.lease,
            )
        if claimed.get("upload"):
            for part, suffix in (("csv", "csv"), ("json", "json")):
                self.client.download(
                    f"/api/remote/uploads/{claimed['upload']}/{part}",
                    self.scratch / "uploads" / f"{claimed['upload']}.{suffix}",
                    patience=self.queue.lease,
                )
        job = Job(
            **claimed["job"],
            run_dir=run_dir,
            uploads_dir=self.scratch / "uploads",
            resume_from=resume_from,
        )
        job.run_dir.mkdir(parents=True, exist_ok=True)
        sender = ReportSender(self.client, run_id, attempt, patience=self.queue.lease)
        return RemoteRecording(
            job,
            sender,
            CheckpointUploader(sender, run_dir / "outbox"),
            LogShipper(sender, job.log_path),
        )

    def end(self, run_id: int, attempt: int, end: End) -> str | None:
        from trainboard.worker.wire import end_to_wire

        path = f"/api/remote/runs/{run_id}/attempts/{attempt}/end"
        try:
            answer = self.client.request(
                "POST", path, json={"end": end_to_wire(end)}, patience=self.queue.lease
            )
        except (RunTakenOver, ServerUnreachable) as exc:
            print(f"run {run_id} attempt {attempt}: its end was not recorded ({exc})", flush=True)
            return None
        shutil.rmtree(self.scratch / "runs" / str(run_id), ignore_errors=True)
        return str(answer.json()["status"])


def remote_worker(
    settings: Settings, server: str, token: str | None, device: str, devices: int
) -> Worker:
    """A worker whose queue and recordings are the server at `server`."""
    queue = RemoteQueue(ServerClient(server, token))
    # A folder of its own inside the data folder: it deletes what it made, and nothing else.
    recordings = RemoteRecordings(queue, settings.home / "remote-scratch")
    return Worker(
        settings, None, device=device, devices=devices, queue=queue, recordings=recordings
    )
