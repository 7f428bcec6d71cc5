"""Sweeps: create, list, read, cancel; the driver's hold on a sweep; a trial's objective value;
the trials' curves of one metric in one read."""

from __future__ import annotations

import time
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select, update

from trainboard.models import (
    FINAL_STATUSES,
    MetricPoint,
    Run,
    RunStatus,
    Sweep,
    SweepStatus,
    utcnow,
)
from trainboard.schemas import Series
from trainboard.store.errors import Conflict, NotFound
from trainboard.store.metrics import read_series, series_of
from trainboard.store.runs import cancel_run

HOLD_SECONDS = 60.0  # a driver that died lets go of its sweep after this


def create_sweep(session: Session, *, name: str, config: dict[str, Any]) -> Sweep:
    sweep = Sweep(name=name, config=config, seq=1, dirty=True)
    session.add(sweep)
    session.flush()
    if not name:
        sweep.name = f"sweep-{sweep.id}"
    return sweep


def get_sweep(session: Session, *, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id} does not exist")
    return sweep


def list_sweeps(session: Session, *, limit: int, offset: int) -> tuple[list[Sweep], int]:
    rows = session.exec(
        select(Sweep).order_by(col(Sweep.id).desc()).limit(limit).offset(offset)
    ).all()
    total = session.exec(select(func.count()).select_from(Sweep)).one()
    return list(rows), int(total)


def running_sweep_ids(session: Session) -> list[int]:
    ids = session.exec(select(col(Sweep.id)).where(col(Sweep.status) == SweepStatus.running))
    return [int(i) for i in ids.all()]


def trial_runs(session: Session, *, sweep_id: int) -> list[Run]:
    return list(
        session.exec(select(Run).where(col(Run.sweep_id) == sweep_id).order_by(col(Run.id))).all()
    )


def mark_dirty(session: Session, *, sweep_id: int) -> None:
    session.exec(update(Sweep).where(col(Sweep.id) == sweep_id).values(dirty=True))


def hold(session: Session, *, sweep_id: int, now: float | None = None) -> bool:
    """Take the sweep for this driver unless another holds it; clears `dirty` on success."""
    now = time.time() if now is None else now
    taken = session.exec(
        update(Sweep)
        .where(
            col(Sweep.id) == sweep_id,
            (col(Sweep.driver_until).is_(None)) | (col(Sweep.driver_until) < now),
        )
        .values(driver_until=now + HOLD_SECONDS, dirty=False)
    )
    return taken.rowcount == 1


def release(session: Session, *, sweep_id: int) -> bool:
    """Let go of the sweep; True when something changed meanwhile (drive again)."""
    session.exec(update(Sweep).where(col(Sweep.id) == sweep_id).values(driver_until=None))
    return bool(session.exec(select(col(Sweep.dirty)).where(col(Sweep.id) == sweep_id)).one())


def cancel_sweep(session: Session, *, sweep_id: int) -> Sweep:
    """Stop a sweep: queued trials are cancelled now, running ones at their next step."""
    sweep = get_sweep(session, sweep_id=sweep_id)
    if sweep.status != SweepStatus.running:
        raise Conflict(f"sweep {sweep_id} has already finished ({sweep.status})")
    for run in trial_runs(session, sweep_id=sweep_id):
        if run.status not in FINAL_STATUSES:
            cancel_run(session, run_id=run.id or 0)
    sweep.status, sweep.finished_at = SweepStatus.cancelled, utcnow()
    sweep.seq += 1
    sweep.dirty = True
    session.add(sweep)
    session.flush()
    return sweep


def objective_value(session: Session, *, run_id: int, metric: str, mode: str) -> float | None:
    """A trial's objective: the best epoch value of `metric` (min or max), None if it has none."""
    best = func.min if mode == "min" else func.max
    value = session.exec(
        select(best(col(MetricPoint.value))).where(
            col(MetricPoint.run_id) == run_id, col(MetricPoint.key) == metric
        )
    ).one()
    return None if value is None else float(value)


def objective_values(
    session: Session, *, run_ids: list[int], metric: str, mode: str
) -> dict[int, float]:
    """Each run's objective (see `objective_value`) in one query."""
    if not run_ids:
        return {}
    best = func.min if mode == "min" else func.max
    rows = session.exec(
        select(col(MetricPoint.run_id), best(col(MetricPoint.value)))
        .where(col(MetricPoint.run_id).in_(run_ids), col(MetricPoint.key) == metric)
        .group_by(col(MetricPoint.run_id))
    ).all()
    return {int(run_id): float(value) for run_id, value in rows if value is not None}


def change_marker(session: Session, *, sweep_id: int) -> tuple[int, int]:
    """What a live-events client watches: the sweep's sequence, and its trials' progress."""
    seq = session.exec(select(col(Sweep.seq)).where(col(Sweep.id) == sweep_id)).one()
    runs = session.exec(
        select(func.coalesce(func.sum(col(Run.status_seq) + col(Run.metric_seq)), 0)).where(
            col(Run.sweep_id) == sweep_id
        )
    ).one()
    return int(seq), int(runs)


def record_progress(
    session: Session,
    *,
    sweep_id: int,
    best: tuple[int, float, dict[str, Any]] | None,
    finished: bool,
) -> None:
    """The sweep's best trial so far, and its end when every trial has ended."""
    values: dict[str, Any] = {"seq": Sweep.seq + 1}
    if best is not None:
        values |= {"best_run_id": best[0], "best_value": best[1], "best_params": best[2]}
    if finished:
        values |= {"status": SweepStatus.completed, "finished_at": utcnow()}
    session.exec(
        update(Sweep)
        .where(col(Sweep.id) == sweep_id, col(Sweep.status) == SweepStatus.running)
        .values(**values)
    )


def bump(session: Session, *, sweep_id: int) -> None:
    session.exec(update(Sweep).where(col(Sweep.id) == sweep_id).values(seq=Sweep.seq + 1))


TRIAL_ENDS = {RunStatus.completed, RunStatus.pruned}


def trial_curves(
    session: Session, *, sweep_id: int, key: str, run_ids: list[int] | None, max_points: int
) -> dict[int, Series]:
    """Each trial's series of `key` (all the sweep's trials, or those of `run_ids` that are its
    trials), as `store.metrics.read_series` gives one: whole in one query for the series of at
    most `max_points` points (a trial's epochs), downsampled one by one above that."""
    of_sweep = col(Run.sweep_id) == sweep_id
    wanted = [of_sweep] if run_ids is None else [of_sweep, col(Run.id).in_(run_ids)]
    counts = session.exec(
        select(col(MetricPoint.run_id), func.count())
        .join(Run, col(Run.id) == col(MetricPoint.run_id))
        .where(*wanted, col(MetricPoint.key) == key)
        .group_by(col(MetricPoint.run_id))
    ).all()
    short = [run_id for run_id, count in counts if count <= max_points]
    out: dict[int, Series] = {}
    if short:
        rows = session.exec(
            select(
                col(MetricPoint.run_id),
                col(MetricPoint.step),
                col(MetricPoint.value),
                col(MetricPoint.timestamp),
            )
            .where(col(MetricPoint.run_id).in_(short), col(MetricPoint.key) == key)
            .order_by(col(MetricPoint.run_id), col(MetricPoint.step))
        ).all()
        for run_id, points in groupby(rows, key=itemgetter(0)):
            out[run_id] = series_of(point[1:] for point in points)
    for run_id, count in counts:
        if count > max_points:
            found = read_series(session, run_id=run_id, keys=[key], max_points=max_points)
            out[run_id] = found[key]
    return out
