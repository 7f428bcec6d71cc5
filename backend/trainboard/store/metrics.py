"""Metric points: batched upserts keyed by (run, key, step), and honest downsampled reads."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text, update
from sqlmodel import Session, col

from trainboard.db import driver_rows, placeholder
from trainboard.models import FINAL_STATUSES, MetricPoint, Run, RunStatus
from trainboard.schemas import Series
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
    write_reserved(session, run_id=run_id, points=points, last_seq=int(row[0]))
    return True


def write_reserved(
    session: Session, *, run_id: int, points: Sequence[Point], last_seq: int
) -> None:
    """Write `points`, whose sequence numbers end at `last_seq` (reserved on the run's row in
    this transaction), and bring the downsampling pyramid up to date."""
    first_seq = last_seq - len(points) + 1
    now = time.time()
    rows = [
        (
            run_id,
            key,
            step,
            value if value is not None and math.isfinite(value) else None,
            ts or now,
            first_seq + i,
        )
        for i, (key, step, value, ts) in enumerate(points)
    ]
    connection = session.connection()
    # Straight to the driver's executemany: the ORM is ~30x slower for bulk points.
    connection.exec_driver_sql(_UPSERT.format(p=", ".join([placeholder(connection)] * 6)), rows)
    pyramid.update(session, run_id=run_id, rows=rows)


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


Rows = list[tuple[int, float | None, float]]  # step, value, timestamp
# Whole series spanning more steps than this are written as JSON by the database (see
# series_json); below it Python's encoder is quicker and holds the GIL for under ~50 ms.
PYTHON_JSON_STEPS = 50_000


def read_series(
    session: Session,
    *,
    run_id: int,
    keys: Iterable[str],
    max_points: int,
    x_min: int | None = None,
    x_max: int | None = None,
) -> dict[str, Series]:
    """Each key's points in [x_min, x_max]; a series of more than `max_points` points is cut
    into buckets of its x-range and each bucket keeps its first, last, minimum and maximum
    points and its first NaN. Non-finite values are None."""
    out: dict[str, Series] = {}
    for key in keys:
        found = _select(session, run_id=run_id, key=key, max_points=max_points, lo=x_min, hi=x_max)
        if found is None:
            continue
        out[key] = _series(session, run_id, key, found)
    return out


def series_json(
    session: Session,
    *,
    run_id: int,
    keys: Iterable[str],
    max_points: int,
    x_min: int | None = None,
    x_max: int | None = None,
) -> str:
    """The same series as `read_series`, as the JSON object of a response's `series`.

    A long series comes back whole as arrays the database writes itself: a million points make
    no Python object each, so a large read neither holds the GIL for seconds (stalling every
    other request) nor pays for garbage collection over millions of tuples. Shorter ones
    (most reads) are quicker through Python's encoder."""
    parts = []
    for key in keys:
        found = _select(session, run_id=run_id, key=key, max_points=max_points, lo=x_min, hi=x_max)
        if found is None:
            continue
        if isinstance(found, tuple) and found[1] - found[0] >= PYTHON_JSON_STEPS:
            body = _raw_json(session, run_id, key, *found)
        else:
            body = _series(session, run_id, key, found).model_dump_json()
        parts.append(f"{json.dumps(key)}:{body}")
    return "{" + ",".join(parts) + "}"


def _series(session: Session, run_id: int, key: str, found: Rows | tuple[int, int]) -> Series:
    """A Series of downsampled `found` rows, or of the whole (lo, hi) range `found` names."""
    rows = found if isinstance(found, list) else _raw_rows(session, run_id, key, *found)
    return series_of(rows)


def series_of(rows: Iterable[tuple[int, float | None, float]]) -> Series:
    """A Series of (step, value, timestamp) rows; non-finite values are None."""
    steps, values, timestamps = (list(column) for column in zip(*rows, strict=True))
    values = [v if v is None or math.isfinite(v) else None for v in values]
    # Built from the database's own types: validating a million numbers again costs more.
    return Series.model_construct(steps=steps, values=values, timestamps=timestamps)


def _select(
    session: Session, *, run_id: int, key: str, max_points: int, lo: int | None, hi: int | None
) -> Rows | tuple[int, int] | None:
    """What a read of one series returns: downsampled rows, or the (lo, hi) step range to
    read whole; None for no point in range."""
    params = {
        "run": run_id,
        "key": key,
        "lo": lo if lo is not None else -(2**62),
        "hi": hi if hi is not None else 2**62,
    }
    where = "run_id = :run AND key = :key AND step BETWEEN :lo AND :hi"
    first, last = session.exec(
        text(f"SELECT MIN(step), MAX(step) FROM metric_point WHERE {where}"), params=params
    ).one()
    if first is None:
        return None
    # A series of at most max_points points comes back whole, however far apart its steps.
    # Fewer steps than that cannot hold more points; else the pyramid has the count, or (a
    # range too long for it) one indexed COUNT does.
    if last - first + 1 <= max_points:
        return first, last
    buckets = max(1, max_points // 5)  # up to 5 points a bucket: first, last, min, max, NaN
    summary = pyramid.downsample(
        session, run_id=run_id, key=key, lo=first, hi=last, buckets=buckets
    )
    if summary is not None:
        return summary[0] if summary[1] > max_points else (first, last)
    if _count(session, where, params) <= max_points:
        return first, last
    width = max(1, -(-(last - first + 1) // buckets))
    return _bucket_extremes(session, where, {**params, "lo": first, "width": width})


EMPTY = "'[]'::json"
_RANGE = "FROM metric_point WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ?"


def _raw_rows(session: Session, run_id: int, key: str, lo: int, hi: int) -> Rows:
    sql = f"SELECT step, value, timestamp {_RANGE} ORDER BY step"
    return driver_rows(session, sql, (run_id, key, lo, hi))  # type: ignore[return-value]


def _raw_json(session: Session, run_id: int, key: str, lo: int, hi: int) -> str:
    if session.get_bind().dialect.name == "sqlite":
        # %!.17g keeps 17 digits where SQLite's own JSON keeps 15: values of the magnitudes
        # metrics have come back exactly (SQLite's printf may miss a last digit beyond about
        # 1e200). The inner ORDER BY keeps the subquery from being flattened into the
        # aggregate, so rows aggregate in step order.
        number = "CASE WHEN {c} IS NULL OR abs({c}) > 1.7976931348623157e308 THEN 'null' "
        number += "ELSE printf('%!.17g', {c}) END"
        arrays = ", ".join(
            f"'[' || COALESCE(group_concat({column}, ','), '') || ']'"
            for column in ("step", number.format(c="value"), number.format(c="timestamp"))
        )
        sql = f"SELECT {arrays} FROM (SELECT step, value, timestamp {_RANGE} ORDER BY step)"
    else:
        # PostgreSQL writes the shortest exact form of each double; NaN/±Infinity as null.
        value = "CASE WHEN value IN ('NaN', 'Infinity', '-Infinity') THEN NULL ELSE value END"
        arrays = (f"json_agg({column} ORDER BY step)" for column in ("step", value, "timestamp"))
        sql = f"SELECT {', '.join(f'COALESCE({a}, {EMPTY})::text' for a in arrays)} {_RANGE}"
    [(steps, values, timestamps)] = driver_rows(session, sql, (run_id, key, lo, hi))
    return f'{{"steps":{steps},"values":{values},"timestamps":{timestamps}}}'


def _count(session: Session, where: str, params: dict[str, Any]) -> int:
    return int(
        session.exec(text(f"SELECT COUNT(*) FROM metric_point WHERE {where}"), params=params).one()[
            0
        ]
    )


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


def require_writable(run: Run | None, run_id: int, *, what: str = "metrics") -> Run:
    """The external run that a client may still log `what` into, or NotFound / Conflict."""
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    if run.kind != "external":
        raise Conflict(
            f"run {run_id} is a queued job: its {what} are written by its worker; "
            "create an external run to log your own"
        )
    if run.status in FINAL_STATUSES:
        raise Conflict(f"run {run_id} has finished ({run.status}); its {what} can no longer change")
    return run


__all__ = [
    "MetricPoint",
    "add_metrics",
    "metric_keys",
    "points_since",
    "read_series",
    "require_writable",
]
