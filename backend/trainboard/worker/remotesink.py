"""What a remote worker sends the server while its child trains: the child's reports in
numbered batches, its checkpoint files, and its log (see `api/remote.py` for the other end).

Reports wait in a batch for at most `BATCH_SECONDS` (or until a checkpoint or the end needs
them first); a batch is kept until the server has taken it, and numbered, so one sent again
after a lost answer is applied once. Checkpoint files are uploaded with their sha256, after
the reports before them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainboard.training.exits import End
from trainboard.training.sinks import EpochReport
from trainboard.worker.serverclient import ServerClient
from trainboard.worker.wire import message_to_wire

BATCH_SECONDS = 0.5
LOG_CHUNK = 1 << 20


class ReportSender:
    """A `Sink` whose reports go to the server in batches."""

    def __init__(self, client: ServerClient, run_id: int, attempt: int, patience: float) -> None:
        self.client, self.patience = client, patience
        self.path = f"/api/remote/runs/{run_id}/attempts/{attempt}"
        self.pending: list[list[Any]] = []
        self.batch = 0
        self.since = time.monotonic()

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self.pending.append(message_to_wire(("step", step, dict(metrics))))

    def log_epoch(self, report: EpochReport) -> None:
        self.pending.append(message_to_wire(("epoch", report)))

    def log_checkpoints(self, entries: list[Any]) -> None:
        raise TypeError("a remote worker's checkpoints are kept by the server")

    def close(self, end: End) -> None:
        self.pending.append(message_to_wire(("end", end)))
        self.flush()

    def flush_due(self) -> None:
        if self.pending and time.monotonic() - self.since >= BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Send what is pending, as the next batch (the same number when sent again)."""
        if not self.pending:
            return
        import torch

        body = io.BytesIO()
        torch.save(self.pending, body)
        self.client.request(
            "POST",
            f"{self.path}/reports",
            params={"batch": self.batch + 1},
            content=body.getvalue(),
            headers={"Content-Type": "application/octet-stream"},
            patience=self.patience,
        )
        self.batch += 1
        self.pending = []
        self.since = time.monotonic()


class CheckpointUploader:
    """A `CheckpointWriter` that writes the file here, then uploads it, after the reports that
    came before it."""

    def __init__(self, sender: ReportSender, folder: Path) -> None:
        self.sender, self.folder = sender, folder

    def save(self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float]) -> None:
        import torch

        self.sender.flush()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"upload-{epoch}.pt"
        torch.save(state, path)
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        with path.open("rb") as file:
            self.sender.client.request(
                "PUT",
                f"{self.sender.path}/checkpoints/{epoch}",
                params={"sha256": digest.hexdigest(), "metrics": json.dumps(metrics)},
                content=file,
                headers={"Content-Type": "application/octet-stream"},
                patience=self.sender.patience,
            )
        path.unlink()


class LogShipper:
    """Sends what the child has written to its log since the last call."""

    def __init__(self, sender: ReportSender, log: Path) -> None:
        self.sender, self.log, self.sent = sender, log, 0

    def ship(self) -> None:
        try:
            with self.log.open("rb") as file:
                file.seek(self.sent)
                data = file.read(LOG_CHUNK)
        except FileNotFoundError:
            return
        while data:
            self.sender.client.request(
                "POST",
                f"{self.sender.path}/log",
                params={"offset": self.sent},
                content=data,
                headers={"Content-Type": "application/octet-stream"},
                patience=self.sender.patience,
            )
            self.sent += len(data)
            with self.log.open("rb") as file:
                file.seek(self.sent)
                data = file.read(LOG_CHUNK)
