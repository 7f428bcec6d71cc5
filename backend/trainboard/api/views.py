"""Turning rows into response schemas."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from trainboard.config import Settings
from trainboard.models import Checkpoint, Run, RunKind, RunStatus, utcnow
from trainboard.schemas import CheckpointPublic, RunPublic
from trainboard.store.files import folder_bytes
from trainboard.store.workers import most_devices

# A worker not heard from for this long is not counted as running (they beat every 2 s).
WORKER_SILENCE = timedelta(seconds=30)
NOT_ASKED = -1


def offered_devices(session: Session) -> int | None:
    """The most devices a running worker offers one run (None: no worker is running)."""
    return most_devices(session, seen_since=utcnow() - WORKER_SILENCE)


def queue_reason(run: Run, offered: int | None) -> str | None:
    """Why a queued run is not training yet, when something other than the runs ahead of it
    holds it: no worker, or none with the devices it needs."""
    if run.status != RunStatus.queued or run.kind == RunKind.external:
        return None
    if offered is None:
        return "Waiting for a worker: none is running (start one with `trainboard worker`)."
    if run.devices > offered:
        return (
            f"Waiting for a worker with {run.devices} devices: the workers running now offer "
            f"at most {offered} (`trainboard worker --devices N` on a machine that has them)."
        )
    return None


def run_public(run: Run, settings: Settings, offered: int | None = NOT_ASKED) -> RunPublic:
    """The run as the API shows it; its size as recorded (measured only for runs from before
    sizes were recorded). `offered`: the most devices a running worker offers (see
    `offered_devices`), to say why a queued run waits; not asked, nothing is said."""
    data = run.model_dump()
    data["diagnosis"] = run.summary.get("diagnosis") if run.status == "diverged" else None
    if data["disk_bytes"] is None:
        data["disk_bytes"] = folder_bytes(settings.run_dir(run.id or 0))
    if offered != NOT_ASKED:
        data["queue_reason"] = queue_reason(run, offered)
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
