"""The queue in the database: atomic claim, leases, recovery, and the attempt-guarded writes
a worker makes for the run it holds. Every guarded write matches (run, attempt, running) and
touches nothing when the run was taken over, so a worker that wakes up late writes nothing."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import bindparam, func, text, update
from sqlmodel import Session, col, select

from trainboard.models import Run, RunKind, RunStatus, utcnow

LOST_WORKER_ERROR = (
    "The worker running this run stopped responding (process killed or machine lost) and "
    "the run used up its retries. Resume it to continue from its latest checkpoint."
)


CLAIM = (
    "UPDATE run SET status = 'running', worker = :worker, device = :device, "
    "attempt = attempt + 1, lease_expires_at = :lease, cancel_requested = :false, "
    "started_at = COALESCE(started_at, :now), status_seq = status_seq + 1 "
)


def _claim(
    session: Session, where: str, *, worker_id: str, device: str, lease: float | None, **params: Any
) -> tuple[int, int] | None:
    row = session.exec(
        text(f"{CLAIM} WHERE {where} AND status = 'queued' RETURNING id, attempt").bindparams(
            bindparam("now", type_=Run.__table__.c.started_at.type)
        ),
        params={
            "worker": worker_id,
            "device": device,
            "lease": lease,
            "now": utcnow(),
            "false": False,
            **params,
        },
    ).first()
    return (int(row[0]), int(row[1])) if row else None


def claim_next_run(
    session: Session,
    *,
    worker_id: str,
    device: str,
    lease_seconds: float,
    now: float | None = None,
    devices: int = 1,
) -> tuple[int, int] | None:
    """Take the queued job with the highest priority, then the oldest, among those that need
    at most `devices` devices; None when there is none. Returns (run_id, attempt). Two workers
    never take the same run."""
    skip_locked = (
        " FOR UPDATE SKIP LOCKED" if session.get_bind().dialect.name == "postgresql" else ""
    )
    # On SQLite the whole statement runs under BEGIN IMMEDIATE, so it is atomic by itself.
    where = (
        "id = (SELECT id FROM run WHERE status = 'queued' AND kind != 'external' "
        f"AND devices <= :fits ORDER BY priority DESC, id ASC LIMIT 1{skip_locked})"
    )
    lease = (time.time() if now is None else now) + lease_seconds
    return _claim(session, where, worker_id=worker_id, device=device, lease=lease, fits=devices)


def claim_run(session: Session, *, run_id: int, worker_id: str, device: str) -> int | None:
    """Take the queued run `run_id` for a process that trains it in the foreground
    (`trainboard train`); returns the attempt, or None when it is not queued. The claim holds
    no lease: nothing renews one while such a run trains, and no other worker may retry it."""
    claim = _claim(session, "id = :id", worker_id=worker_id, device=device, lease=None, id=run_id)
    return None if claim is None else claim[1]


def has_work(session: Session, *, now: float | None = None, devices: int = 1) -> bool:
    """Whether a job that fits `devices` is queued, or a running one's lease ran out by `now`:
    a read, so an idle worker's look at the queue never takes the write lock."""
    now = time.time() if now is None else now
    row = session.exec(
        select(col(Run.id))
        .where(
            col(Run.kind) != RunKind.external,
            ((col(Run.status) == RunStatus.queued) & (col(Run.devices) <= devices))
            | ((col(Run.status) == RunStatus.running) & (col(Run.lease_expires_at) < now)),
        )
        .limit(1)
    ).first()
    return row is not None


def _guard(run_id: int, attempt: int) -> Any:
    return update(Run).where(
        col(Run.id) == run_id, col(Run.attempt) == attempt, col(Run.status) == RunStatus.running
    )


def count_queued(session: Session) -> int:
    """How many runs wait in the queue for a worker."""
    query = select(func.count()).where(
        col(Run.status) == RunStatus.queued, col(Run.kind) != RunKind.external
    )
    return int(session.exec(query).one())


def held_by(session: Session, *, worker_id: str) -> tuple[int, int] | None:
    """The (run, attempt) that `worker_id` holds now, if any: what a claim whose answer was
    lost gave it."""
    row = session.exec(
        select(col(Run.id), col(Run.attempt)).where(
            col(Run.worker) == worker_id,
            col(Run.status) == RunStatus.running,
            col(Run.kind) != RunKind.external,
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


def holds_run(session: Session, *, run_id: int, attempt: int) -> bool:
    """Whether `attempt` still holds the run (it is the current attempt, and running)."""
    row = session.exec(
        select(col(Run.id)).where(
            col(Run.id) == run_id, col(Run.attempt) == attempt, col(Run.status) == RunStatus.running
        )
    ).first()
    return row is not None


def renew_lease(
    session: Session, *, run_id: int, attempt: int, lease_seconds: float
) -> bool | None:
    """Extend the lease; returns whether a cancel was requested, or None if the run was lost."""
    row = session.exec(
        _guard(run_id, attempt)
        .values(lease_expires_at=time.time() + lease_seconds)
        .returning(col(Run.cancel_requested))
    ).first()
    return None if row is None else bool(row[0])


def report_progress(
    session: Session,
    *,
    run_id: int,
    attempt: int,
    epoch: int,
    eta_seconds: float | None,
    summary: dict[str, Any],
) -> bool:
    values: dict[str, Any] = {"epoch": epoch, "eta_seconds": eta_seconds, "summary": summary}
    result = session.exec(_guard(run_id, attempt).values(**values, status_seq=Run.status_seq + 1))
    return result.rowcount == 1


def report_disk_bytes(session: Session, *, run_id: int, attempt: int, disk_bytes: int) -> bool:
    """Record the size of the run's folder; False if the run was lost."""
    return session.exec(_guard(run_id, attempt).values(disk_bytes=disk_bytes)).rowcount == 1


def retries_left(session: Session, *, run_id: int, attempt: int) -> bool:
    """Whether the run may be queued again after `attempt` failed for a cause outside it:
    retries remain and no cancel is pending (a cancel wins over a retry)."""
    row = session.exec(
        select(col(Run.max_retries), col(Run.cancel_requested)).where(col(Run.id) == run_id)
    ).first()
    return row is not None and attempt <= row[0] and not row[1]


def finish_run(
    session: Session,
    *,
    run_id: int,
    attempt: int,
    status: RunStatus,
    error: str | None = None,
    summary: dict[str, Any] | None = None,
    disk_bytes: int | None = None,
) -> bool:
    """End the attempt with a final status, or put the run back in the queue (status queued)."""
    values: dict[str, Any] = {
        "status": status,
        "error": error,
        "lease_expires_at": None,
        "eta_seconds": None,
        "status_seq": Run.status_seq + 1,
    }
    if status != RunStatus.queued:
        values["finished_at"] = utcnow()
    if summary is not None:
        values["summary"] = summary
    if disk_bytes is not None:
        values["disk_bytes"] = disk_bytes
    return session.exec(_guard(run_id, attempt).values(**values)).rowcount == 1


def recover_expired_runs(session: Session, *, now: float | None = None) -> list[tuple[int, str]]:
    """Runs whose worker stopped heartbeating: cancelled if a cancel was pending (it wins over
    a retry), else queued again while retries remain, else failed."""
    now = time.time() if now is None else now
    expired = session.exec(
        update(Run)
        .where(
            col(Run.status) == RunStatus.running,
            col(Run.kind) != RunKind.external,
            col(Run.lease_expires_at) < now,
        )
        .values(lease_expires_at=None)
        .returning(col(Run.id), col(Run.attempt), col(Run.max_retries), col(Run.cancel_requested))
    ).all()
    actions = []
    for run_id, attempt, max_retries, cancel_requested in expired:
        if cancel_requested:
            status, error = RunStatus.cancelled, None
        elif attempt <= max_retries:
            status, error = RunStatus.queued, None
        else:
            status, error = RunStatus.failed, LOST_WORKER_ERROR
        session.exec(
            update(Run)
            .where(col(Run.id) == run_id)
            .values(
                status=status,
                error=error,
                finished_at=None if status == RunStatus.queued else utcnow(),
                eta_seconds=None,
                status_seq=Run.status_seq + 1,
            )
        )
        actions.append((run_id, "requeued" if status == RunStatus.queued else str(status)))
    return actions
