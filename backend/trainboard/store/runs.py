"""Runs: create, list, read, edit, cancel, resume, finish, delete."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import String, cast, func, or_
from sqlmodel import Session, col, delete, select, update

from trainboard.models import (
    FINAL_STATUSES,
    RESUMABLE_STATUSES,
    Checkpoint,
    MetricBucket,
    MetricPoint,
    Run,
    RunKind,
    RunStatus,
    utcnow,
)
from trainboard.schemas import ExternalRunCreate, RunUpdate
from trainboard.store.errors import Conflict, NotFound
from trainboard.training.spec import RunSpec


def _publish(session: Session, run: Run) -> Run:
    """Save a change to a run and bump its status sequence, so live-events clients see it."""
    run.status_seq += 1
    session.add(run)
    session.flush()
    return run


def create_job_run(
    session: Session,
    *,
    spec: RunSpec,
    sweep_id: int | None = None,
    kind: RunKind = RunKind.job,
    options: dict[str, Any] | None = None,
    priority: int | None = None,
) -> Run:
    """Queue a run of `spec`: a training job, or a check of it (`kind`, with its `options`)."""
    run = Run(
        name=spec.display_name(),
        kind=kind,
        options=options,
        status=RunStatus.queued,
        spec=spec.model_dump(mode="json"),
        tags=list(spec.tags),
        notes=spec.notes,
        epochs=spec.epochs if kind is RunKind.job else 1,
        priority=spec.priority if priority is None else priority,
        max_retries=spec.max_retries,
        devices=spec.devices if kind is RunKind.job else 1,  # a check runs in one process
        sweep_id=sweep_id,
        status_seq=1,
        disk_bytes=0,  # nothing written yet: a listing need not look at the disk
    )
    session.add(run)
    session.flush()
    return run


def create_external_run(session: Session, *, request: ExternalRunCreate) -> Run:
    run = Run(
        name=request.name or "external",
        kind=RunKind.external,
        status=RunStatus.running,
        spec={"params": request.params},
        tags=list(request.tags),
        notes=request.notes,
        started_at=utcnow(),
        attempt=1,
        status_seq=1,
        disk_bytes=0,
    )
    session.add(run)
    session.flush()
    return run


def get_run(session: Session, *, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def list_runs(
    session: Session,
    *,
    status: str | None = None,
    tag: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Run], int]:
    """Runs newest first, filtered by status, tag and a text search of name and notes."""
    query = select(Run)
    if status:
        query = query.where(col(Run.status).in_(status.split(",")))
    if tag:
        escaped = json.dumps(tag).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(cast(Run.tags, String).like(f"%{escaped}%", escape="\\"))
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                col(Run.name).ilike(pattern, escape="\\"),
                col(Run.notes).ilike(pattern, escape="\\"),
            )
        )
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(Run.id).desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total)


def update_run(session: Session, *, run_id: int, changes: RunUpdate) -> Run:
    run = get_run(session, run_id=run_id)
    for field, value in changes.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(run, field, value)
    return _publish(session, run)


def set_disk_bytes(session: Session, *, run_id: int, disk_bytes: int) -> None:
    """Record the size of the run's folder after a file was written into it."""
    session.exec(update(Run).where(col(Run.id) == run_id).values(disk_bytes=disk_bytes))


def add_disk_bytes(session: Session, *, run_id: int, added: int) -> None:
    """Count `added` bytes appended to a file of the run's folder (a run from before sizes
    were recorded keeps no size: its listing measures the folder)."""
    session.exec(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.disk_bytes).is_not(None))
        .values(disk_bytes=col(Run.disk_bytes) + added)
    )


def cancel_run(session: Session, *, run_id: int) -> Run:
    """A queued run is cancelled now; a running one is asked to stop at its next step."""
    run = get_run(session, run_id=run_id)
    if run.status in FINAL_STATUSES:
        raise Conflict(f"run {run_id} has already finished ({run.status})")
    if run.status == RunStatus.queued or run.kind == RunKind.external:
        run.status, run.finished_at = RunStatus.cancelled, utcnow()
    else:
        run.cancel_requested = True
    return _publish(session, run)


def resume_run(session: Session, *, run_id: int, epochs: int | None) -> Run:
    """Queue a stopped run again; it continues from its latest checkpoint."""
    run = get_run(session, run_id=run_id)
    if run.kind == RunKind.external:
        raise Conflict("an external run is resumed by its own script, not by a worker")
    if run.kind != RunKind.job:
        raise Conflict(f"a {run.kind} check is not resumed: start a new one")
    more = epochs is not None and epochs > run.epochs
    if run.status not in RESUMABLE_STATUSES and not (run.status == RunStatus.completed and more):
        raise Conflict(
            f"run {run_id} is {run.status}: only failed, cancelled or diverged runs resume, "
            "or a completed one given more epochs"
        )
    if epochs is not None:
        if epochs < run.epoch:
            raise Conflict(f"epochs={epochs} is below the {run.epoch} epochs already done")
        run.epochs = epochs
        run.spec = {**run.spec, "epochs": epochs}
    run.status, run.error, run.finished_at = RunStatus.queued, None, None
    run.cancel_requested = False
    # A fresh retry budget: the attempts already made do not count against this resume.
    run.max_retries = run.attempt + int(run.spec.get("max_retries", 1))
    return _publish(session, run)


def finish_external_run(
    session: Session,
    *,
    run_id: int,
    status: str,
    error: str | None,
    params: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
) -> Run:
    """End an external run; `params` are merged into its spec's, `summary` into its summary."""
    run = get_run(session, run_id=run_id)
    if run.kind != RunKind.external:
        raise Conflict("only external runs are finished through the API; workers finish their own")
    if run.status in FINAL_STATUSES:
        raise Conflict(f"run {run_id} has already finished ({run.status})")
    run.status, run.error, run.finished_at = status, error, utcnow()
    if params:
        run.spec = {**run.spec, "params": {**run.spec.get("params", {}), **params}}
    if summary:
        run.summary = {**run.summary, **summary}
    return _publish(session, run)


def delete_run(session: Session, *, run_id: int) -> None:
    run = get_run(session, run_id=run_id)
    if run.status in (RunStatus.queued, RunStatus.running):
        raise Conflict(f"run {run_id} is {run.status}; cancel it before deleting it")
    session.exec(delete(MetricPoint).where(col(MetricPoint.run_id) == run_id))
    session.exec(delete(MetricBucket).where(col(MetricBucket.run_id) == run_id))
    session.exec(delete(Checkpoint).where(col(Checkpoint.run_id) == run_id))
    session.delete(run)
    session.flush()
