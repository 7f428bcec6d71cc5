"""Turning rows into response schemas."""

from __future__ import annotations

from trainboard.config import Settings
from trainboard.models import Checkpoint, Run
from trainboard.schemas import CheckpointPublic, RunPublic
from trainboard.store.files import folder_bytes


def run_public(run: Run, settings: Settings) -> RunPublic:
    """The run as the API shows it; its size as recorded (measured only for runs from before
    sizes were recorded)."""
    data = run.model_dump()
    data["diagnosis"] = run.summary.get("diagnosis") if run.status == "diverged" else None
    if data["disk_bytes"] is None:
        data["disk_bytes"] = folder_bytes(settings.run_dir(run.id or 0))
    return RunPublic.model_validate(data)


def checkpoint_public(row: Checkpoint) -> CheckpointPublic:
    return CheckpointPublic(
        id=row.name,
        epoch=row.epoch,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        metrics=row.metrics,
        is_best=row.is_best,
        created_at=row.created_at,
    )
