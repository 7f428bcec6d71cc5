"""A pre-aggregated pyramid of metric points, so a long series downsamples without a full scan.

Level L cuts a series' steps into buckets of 16**L steps (L = 1..4: 16 up to 65,536). Each
cell keeps its bucket's point count and five points: first, last, minimum, maximum and first
NaN. Cells merge associatively, so a parent is rebuilt from its 16 children and an appended
batch merges into the cells it touches; a batch that rewrites existing steps recomputes those
level-1 cells from the raw points. All of it happens in the writer's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from trainboard.db import driver_rows, placeholder

FANOUT = 16
# 16 .. 65,536 steps a bucket: at 400 buckets a read, spans up to ~26M steps use the pyramid;
# longer ones fall back to aggregating raw points. Each level costs a read and a write per batch.
LEVELS = 4
Point = tuple[int, float | None, float]  # step, value (None = NaN), timestamp


def width(level: int) -> int:
    return FANOUT**level


@dataclass
class Cell:
    count: int
    first: Point
    last: Point
    low: Point | None  # the minimum finite-or-inf value; None when every point is NaN
    high: Point | None
    nan: Point | None  # the first NaN

    @classmethod
    def of(cls, points: Sequence[Point]) -> Cell:
        # One pass, no sort: this runs for every point written.
        first = last = points[0]
        low: Point | None = None
        high: Point | None = None
        nan: Point | None = None
        for point in points:
            step, value = point[0], point[1]
            if step < first[0]:
                first = point
            if step > last[0]:
                last = point
            if value is None:
                if nan is None or step < nan[0]:
                    nan = point
                continue
            if low is None or value < low[1] or (value == low[1] and step < low[0]):  # type: ignore[operator]
                low = point
            if high is None or value > high[1] or (value == high[1] and step < high[0]):  # type: ignore[operator]
                high = point
        return cls(len(points), first, last, low, high, nan)

    def merge(self, other: Cell) -> Cell:
        def pick(a: Point | None, b: Point | None, key: Any) -> Point | None:
            return b if a is None else a if b is None else min(a, b, key=key)

        return Cell(
            self.count + other.count,
            min(self.first, other.first),
            max(self.last, other.last),
            pick(self.low, other.low, lambda p: (p[1], p[0])),
            pick(self.high, other.high, lambda p: (-p[1], p[0])),
            pick(self.nan, other.nan, lambda p: p[0]),
        )

    def points(self) -> list[Point]:
        return [p for p in (self.first, self.last, self.low, self.high, self.nan) if p is not None]


_POINT_COLUMNS = ("first", "last", "low", "high", "nan")
_COLUMNS = "count, " + ", ".join(f"{n}_step, {n}_value, {n}_ts" for n in _POINT_COLUMNS)


def _row_to_cell(row: Sequence[Any]) -> Cell:
    points: list[Point | None] = []
    for i in range(len(_POINT_COLUMNS)):
        step, value, ts = row[1 + 3 * i : 4 + 3 * i]
        points.append(None if step is None else (int(step), value, float(ts)))
    return Cell(int(row[0]), *points)  # type: ignore[arg-type]


def _cell_to_row(cell: Cell) -> list[Any]:
    row: list[Any] = [cell.count]
    for point in (cell.first, cell.last, cell.low, cell.high, cell.nan):
        row += list(point) if point is not None else [None, None, None]
    return row


Ranges = dict[str, tuple[int, int]]  # key -> (first bucket, last bucket)


def _read_many(
    session: Session, run_id: int, level: int, ranges: Ranges
) -> dict[tuple[str, int], Cell]:
    """The cells of several keys in one query: an epoch writes about ten keys at once."""
    where = " OR ".join("(key = ? AND bucket BETWEEN ? AND ?)" for _ in ranges)
    params: list[Any] = [run_id, level]
    for key, (lo, hi) in ranges.items():
        params += [key, lo, hi]
    # Through the driver: this runs for every written batch, where the ORM's per-statement
    # and per-row overhead would cost more than the query.
    rows = driver_rows(
        session,
        f"SELECT key, bucket, {_COLUMNS} FROM metric_bucket "
        f"WHERE run_id = ? AND level = ? AND ({where})",
        tuple(params),
    )
    return {(r[0], int(r[1])): _row_to_cell(r[2:]) for r in rows}


def _read_cells(
    session: Session, run_id: int, key: str, level: int, lo: int, hi: int
) -> dict[int, Cell]:
    cells = _read_many(session, run_id, level, {key: (lo, hi)})
    return {bucket: cells[(key, bucket)] for _, bucket in sorted(cells)}


def _write_many(
    session: Session, run_id: int, level: int, cells: dict[tuple[str, int], Cell]
) -> None:
    connection = session.connection()
    mark = placeholder(connection)
    names = ["run_id", "key", "level", "bucket", *(c.strip() for c in _COLUMNS.split(","))]
    updates = ", ".join(f"{n} = excluded.{n}" for n in names[4:])
    sql = (
        f"INSERT INTO metric_bucket ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
        f"ON CONFLICT (run_id, key, level, bucket) DO UPDATE SET {updates}"
    )
    rows = [(run_id, key, level, bucket, *_cell_to_row(c)) for (key, bucket), c in cells.items()]
    connection.exec_driver_sql(sql, rows)


def update(session: Session, *, run_id: int, rows: Iterable[Sequence[Any]]) -> None:
    """Bring the pyramid up to date with `rows` (run, key, step, value, timestamp, seq), just
    written to metric_point: per level, one read and one write for all keys of the batch."""
    fresh: dict[tuple[str, int], dict[int, Point]] = defaultdict(dict)
    for _run, key, step, value, ts, _seq in rows:
        fresh[(key, step // FANOUT)][step] = (step, value, ts)  # the last write of a step wins
    if not fresh:
        return
    existing = _read_many(session, run_id, 1, _ranges(fresh))
    cells: dict[tuple[str, int], Cell] = {}
    # What the batch adds under each cell, kept while every point of the batch is a new step
    # (then a parent's new cell is exactly its old one merged with the delta).
    deltas: dict[tuple[str, int], Cell] | None = {}
    for (key, bucket), unique in fresh.items():
        old = existing.get((key, bucket))
        delta = Cell.of(list(unique.values()))
        if old is None:
            cells[(key, bucket)] = delta
        elif min(unique) > old.last[0]:  # a pure append: merge
            cells[(key, bucket)] = old.merge(delta)
        else:  # rewrites or fills in steps: recompute from the raw points
            lo = bucket * FANOUT
            cells[(key, bucket)] = Cell.of(_raw_points(session, run_id, key, lo, lo + FANOUT - 1))
            deltas = None
        if deltas is not None:
            deltas[(key, bucket)] = delta
    _write_many(session, run_id, 1, cells)
    if deltas is not None:
        _merge_upwards(session, run_id, deltas)
        return
    touched = set(cells)
    for level in range(2, LEVELS + 1):
        parents = {(key, bucket // FANOUT) for key, bucket in touched}
        child_ranges = {
            key: (lo * FANOUT, hi * FANOUT + FANOUT - 1)
            for key, (lo, hi) in _ranges(parents).items()
        }
        rebuilt: dict[tuple[str, int], Cell] = {}
        for (key, bucket), cell in _read_many(session, run_id, level - 1, child_ranges).items():
            parent = (key, bucket // FANOUT)
            if parent in parents:
                rebuilt[parent] = rebuilt[parent].merge(cell) if parent in rebuilt else cell
        _write_many(session, run_id, level, rebuilt)
        touched = parents


def _merge_upwards(session: Session, run_id: int, deltas: dict[tuple[str, int], Cell]) -> None:
    """For a batch of new steps only: each parent is its old self merged with what the batch
    added under it, reading one row per parent instead of all sixteen children."""
    for level in range(2, LEVELS + 1):
        parents: dict[tuple[str, int], Cell] = {}
        for (key, bucket), delta in deltas.items():
            parent = (key, bucket // FANOUT)
            parents[parent] = parents[parent].merge(delta) if parent in parents else delta
        existing = _read_many(session, run_id, level, _ranges(parents))
        merged = {p: existing[p].merge(d) if p in existing else d for p, d in parents.items()}
        _write_many(session, run_id, level, merged)
        deltas = parents


def _ranges(cells: Iterable[tuple[str, int]]) -> Ranges:
    ranges: Ranges = {}
    for key, bucket in cells:
        lo, hi = ranges.get(key, (bucket, bucket))
        ranges[key] = (min(lo, bucket), max(hi, bucket))
    return ranges


def _raw_points(session: Session, run_id: int, key: str, lo: int, hi: int) -> list[Point]:
    rows = driver_rows(
        session,
        "SELECT step, value, timestamp FROM metric_point "
        "WHERE run_id = ? AND key = ? AND step BETWEEN ? AND ?",
        (run_id, key, lo, hi),
    )
    return [(int(s), v, float(t)) for s, v, t in rows]


def downsample(
    session: Session, *, run_id: int, key: str, lo: int, hi: int, buckets: int
) -> tuple[list[Point], int] | None:
    """At most 5 points a bucket over [lo, hi] from the finest level with few enough buckets,
    and the number of points in the range; None when no level fits (the caller then aggregates
    the raw points)."""
    for level in range(1, LEVELS + 1):
        w = width(level)
        first_full, end_full = -(-lo // w), (hi + 1) // w  # full buckets: [first_full, end_full)
        if end_full - first_full + 2 <= buckets:
            break
    else:
        return None
    out: list[Point] = []
    if first_full >= end_full:  # the range is inside one or two buckets: raw is small enough
        return None
    count = 0
    for cell in _read_cells(session, run_id, key, level, first_full, end_full - 1).values():
        out += cell.points()
        count += cell.count
    # The partial buckets at both ends come from the raw points inside the range, so a zoomed
    # view never shows a point outside it.
    for edge_lo, edge_hi in ((lo, first_full * w - 1), (end_full * w, hi)):
        if edge_lo <= edge_hi:
            raw = _raw_points(session, run_id, key, edge_lo, edge_hi)
            if raw:
                out += Cell.of(raw).points()
                count += len(raw)
    return sorted(set(out), key=lambda p: p[0]), count
