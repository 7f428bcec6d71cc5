"""External runs that stop reporting: each has a deadline, pushed on by every write it makes,
and a run still running past it ends `failed`.

The deadline lives in `lease_expires_at`, which the queue never reads for external runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from trainboard.models import Run, RunKind, RunStatus, utcnow
from trainboard.store.errors import Conflict
from trainboard.store.metrics import Point, require_writable, write_reserved

# How the error of a run the keeper ended for silence begins: such a run is not over, only
# unheard (a laptop asleep, a stopped process), and its script's next report reopens it.
SILENT_ERROR = "the script stopped reporting"
_RUNNING_EXTERNAL = (col(Run.kind) == RunKind.external, col(Run.status) == RunStatus.running)


def log_points(
    session: Session, *, run_id: int, points: Sequence[Point], attempt: int | None, deadline: float
) -> None:
    """An external run's points (none: a heartbeat), written only while it may still log, and
    its deadline pushed on; a run that was failed for silence is running again.

    One statement checks that the run may log, reserves the points' sequence numbers and
    pushes the deadline: a training script's write is on the hot path of every burst."""
    guard = update(Run).where(col(Run.id) == run_id, *_RUNNING_EXTERNAL)
    if attempt is not None:
        guard = guard.where(col(Run.attempt) == attempt)
    reserve = guard.values(metric_seq=Run.metric_seq + len(points), lease_expires_at=deadline)
    row = session.exec(reserve.returning(col(Run.metric_seq))).first()
    if row is None and reopen_silent_run(session, run_id=run_id, deadline=deadline):
        row = session.exec(reserve.returning(col(Run.metric_seq))).first()
    if row is None:
        require_writable(session.get(Run, run_id), run_id)  # says why not, if it can
        raise Conflict(f"attempt {attempt} no longer holds run {run_id}")
    if points:
        write_reserved(session, run_id=run_id, points=points, last_seq=int(row[0]))


def grant_grace(session: Session, *, deadline: float, all_runs: bool) -> None:
    """Give runs without a deadline (new ones) until `deadline`; with `all_runs` every running
    external run: after the server was down, its scripts could not report, so none is late."""
    stale = col(Run.lease_expires_at).is_(None)
    if all_runs:
        stale = stale | (col(Run.lease_expires_at) < deadline)
    session.exec(update(Run).where(*_RUNNING_EXTERNAL, stale).values(lease_expires_at=deadline))


def fail_silent_runs(session: Session, *, now: float, timeout: float) -> list[int]:
    """End `failed` every running external run past its deadline; their ids."""
    late = session.exec(
        select(Run).where(*_RUNNING_EXTERNAL, col(Run.lease_expires_at) < now)
    ).all()
    for run in late:
        run.status, run.finished_at = RunStatus.failed, utcnow()
        run.error = (
            f"{SILENT_ERROR}: nothing was heard from it for {timeout:g} s "
            "(TRAINBOARD_EXTERNAL_TIMEOUT), so it is taken to have died"
        )
        run.status_seq += 1  # live-event clients see the change
        session.add(run)
    session.flush()
    return [int(run.id) for run in late if run.id is not None]


def reopen_silent_run(session: Session, *, run_id: int, deadline: float) -> bool:
    """A run the keeper failed for silence is running again (error cleared) when its script
    reports after all: nothing it sends is refused. False for any other run."""
    run = session.get(Run, run_id)
    if (
        run is None
        or run.kind != RunKind.external
        or run.status != RunStatus.failed
        or not (run.error or "").startswith(SILENT_ERROR)
    ):
        return False
    run.status, run.error, run.finished_at = RunStatus.running, None, None
    run.lease_expires_at = deadline
    run.status_seq += 1  # live-event clients see the change
    session.add(run)
    session.flush()
    return True
