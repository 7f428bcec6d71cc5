"""Metric points: batched upserts keyed by (run, key, step), and honest downsampled reads."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text, update
from sqlmodel import Session, col

from trainboard.models import MetricPoint, Run, RunStatus, Series
from trainboard.store import pyramid
from trainboard.store.errors import Conflict, NotFound

_UPSERT = (
    "INSERT INTO metric_point (run_id, key, step, value, timestamp, seq) VALUES ({p}) "
    "ON CONFLICT (run_id, key, step) DO UPDATE SET "
    "value = excluded.value, timestamp = excluded.timestamp, seq = excluded.seq"
)

Point = tuple[str, int, float | None, float | None]  # key, step, value, timestamp


def add_metrics(
    session: Session, *, run_id: int, points: Sequence[Point], attempt: int | None = None
) -> bool:
    """Write `points` in this transaction; the same (key, step) again replaces the value.

    With `attempt`, the write is refused (False) unless that attempt still holds the run.
    """
    if not points:
        return True
    guard = update(Run).where(col(Run.id) == run_id)
    if attempt is not None:
        guard = guard.where(col(Run.attempt) == attempt, col(Run.status) == RunStatus.running)
    # Reserving the sequence numbers locks the run's row until commit, so points commit in
    # sequence order and a live reader that has seen seq N never misses a point below N.
    row = session.exec(
        guard.values(metric_seq=Run.metric_seq + len(points)).returning(col(Run.metric_seq))
    ).first()
    if row is None:
        if attempt is None:
            raise NotFound(f"run {run_id} does not exist")
        return False
    first_seq = int(row[0]) - len(points) + 1
    now = time.time()
    rows = [
        (
            run_id,
            key,
            step,
            None if value is None or math.isnan(value) else value,
            ts or now,
            first_seq + i,
        )
        for i, (key, step, value, ts) in enumerate(points)
    ]
    connection = session.connection()
    placeholder = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    # Straight to the driver's executemany: the ORM is ~30x slower for bulk points.
    connection.exec_driver_sql(_UPSERT.format(p=", ".join([placeholder] * 6)), rows)
    pyramid.update(session, run_id=run_id, rows=rows)
    return True


def points_since(
    session: Session, *, run_id: int, after_seq: int, limit: int
) -> list[tuple[str, int, float | None, float, int]]:
    rows = session.exec(
        text(
            "SELECT key, step, value, timestamp, seq FROM metric_point "
            "WHERE run_id = :run AND seq > :after ORDER BY seq LIMIT :limit"
        ),
        params={"run": run_id, "after": after_seq, "limit": limit},
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def metric_keys(session: Session, *, run_id: int) -> list[str]:
    rows = session.exec(
        text("SELECT DISTINCT key FROM metric_point WHERE run_id = :run ORDER BY key"),
        params={"run": run_id},
    )
    return [r[0] for r in rows]


def read_series(
    session: Session,
    *,
    run_id: int,
    keys: Iterable[str],
    max_points: int,
    x_min: int | None = None,
    x_max: int | None = None,
) -> dict[str, Series]:
    """Each key's points in [x_min, x_max]; a longer series is cut into buckets of its x-range
    and each bucket keeps its first, last, minimum and maximum points and its first NaN."""
    out: dict[str, Series] = {}
    for key in keys:
        params = {
            "run": run_id,
            "key": key,
            "lo": x_min if x_min is not None else -(2**62),
            "hi": x_max if x_max is not None else 2**62,
        }
        where = "run_id = :run AND key = :key AND step BETWEEN :lo AND :hi"
        lo, hi = session.exec(
            text(f"SELECT MIN(step), MAX(step) FROM metric_point WHERE {where}"), params=params
        ).one()
        if lo is None:
            continue
        buckets = max(1, max_points // 5)  # up to 5 points a bucket: first, last, min, max, NaN
        rows: Any = None
        if hi - lo + 1 > max_points:  # more steps than points wanted: maybe too many points
            summary = pyramid.downsample(
                session, run_id=run_id, key=key, lo=lo, hi=hi, buckets=buckets
            )
            if summary is None:  # no pyramid level fits: aggregate the raw points
                width = max(1, -(-(hi - lo + 1) // buckets))
                rows = _bucket_extremes(session, where, {**params, "lo": lo, "width": width})
            elif summary[1] > max_points:
                rows = summary[0]
        if rows is None:
            rows = session.exec(
                text(
                    f"SELECT step, value, timestamp FROM metric_point WHERE {where} ORDER BY step"
                ),
                params=params,
            ).all()
        out[key] = Series(
            steps=[int(r[0]) for r in rows],
            values=[r[1] if r[1] is None or math.isfinite(r[1]) else None for r in rows],
            timestamps=[float(r[2]) for r in rows],
        )
    return out


def _bucket_extremes(session: Session, where: str, params: dict[str, Any]) -> list[Any]:
    bucket = "(step - :lo) / :width"
    if session.get_bind().dialect.name == "sqlite":
        # SQLite fills bare columns from the row that holds the single MIN()/MAX() aggregate.
        pick = "SELECT {cols} FROM metric_point WHERE {where}{extra} GROUP BY {bucket}"
        finite = " AND value IS NOT NULL"
        shapes = [
            ("MIN(step), value, timestamp", ""),
            ("MAX(step), value, timestamp", ""),
            ("step, MIN(value), timestamp", finite),
            ("step, MAX(value), timestamp", finite),
            ("MIN(step), value, timestamp", " AND value IS NULL"),
        ]
        picks = [pick.format(cols=c, where=where, extra=e, bucket=bucket) for c, e in shapes]
    else:
        orders = ["step", "step DESC", "value ASC, step", "value DESC, step", "step"]
        finite, nan = " AND value IS NOT NULL", " AND value IS NULL"
        filters = ["", "", finite, finite, nan]
        picks = [
            f"SELECT DISTINCT ON ({bucket}) step, value, timestamp FROM metric_point "
            f"WHERE {where}{extra} ORDER BY {bucket}, {order}"
            for order, extra in zip(orders, filters, strict=True)
        ]
    rows: dict[int, Any] = {}
    for sql in picks:
        for row in session.exec(text(sql), params=params):
            rows[int(row[0])] = row
    return [rows[s] for s in sorted(rows)]


def require_writable(run: Run | None, run_id: int) -> Run:
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    if run.kind != "external":
        raise Conflict(
            "metrics of a queued run are written by its worker; "
            "create an external run to log your own"
        )
    return run


__all__ = [
    "MetricPoint",
    "add_metrics",
    "metric_keys",
    "points_since",
    "read_series",
    "require_writable",
]
