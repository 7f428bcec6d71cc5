"""Turning rows into response schemas."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from trainboard.config import Settings
from trainboard.models import Checkpoint, Run
from trainboard.schemas import CheckpointPublic, RunPublic


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # removed while we walked
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def run_public(run: Run, settings: Settings) -> RunPublic:
    data = run.model_dump()
    return RunPublic.model_validate(
        {**data, "disk_bytes": folder_bytes(settings.run_dir(run.id or 0))}
    )


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
