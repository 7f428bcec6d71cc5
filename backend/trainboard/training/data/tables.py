"""CSV tables: parsing an upload into typed columns, with errors that name the problem."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_CATEGORIES = 100
MAX_CLASSES = 1000
CLASSIFICATION_MAX_INT_LEVELS = 20
# Regression targets are trained as float32: a larger value would become infinite there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class TableError(ValueError):
    """A CSV that cannot be used, with a sentence saying why."""


@dataclass
class Table:
    columns: list[str]
    data: dict[str, np.ndarray]  # float64 for numeric columns, object (str) otherwise
    rows: int


def parse_float(text: str) -> float | None:
    """The cell's number; NaN for an empty or missing-value cell, None for text."""
    text = text.strip()
    if text == "" or text.lower() in ("na", "nan", "null", "none"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def read_csv(content: bytes, *, max_columns: int) -> Table:
    """Parse CSV bytes into typed columns; raises TableError naming the first problem."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TableError("the file is not UTF-8 text; upload a CSV file") from None
    if "\x00" in text:
        raise TableError("the file is binary, not CSV text")
    try:
        # A loop, not list(): list() parses the whole file in one C call holding the GIL, so
        # a large upload would stall every other request of the server for seconds.
        rows = [row for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise TableError(f"the file is not valid CSV: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise TableError("the file is empty")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2:
        raise TableError(
            "the CSV needs a header row with at least two columns (features and a target)"
        )
    if len(header) > max_columns:
        raise TableError(f"the CSV has {len(header)} columns; at most {max_columns} are allowed")
    if any(not h for h in header):
        raise TableError("the header row has an empty column name")
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise TableError(f"the header repeats column names: {', '.join(dupes)}")
    body = rows[1:]
    if not body:
        raise TableError("the file has a header but no data rows")
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise TableError(f"line {number} has {len(row)} fields; the header has {len(header)}")
    data = {name: _type_column(name, [row[i] for row in body]) for i, name in enumerate(header)}
    return Table(header, data, len(body))


def _type_column(name: str, cells: list[str]) -> np.ndarray:
    parsed = [parse_float(c) for c in cells]
    bad = [i for i, v in enumerate(parsed) if v is None]
    numeric_share = 1 - len(bad) / len(cells)
    if not bad:
        values = np.asarray(parsed, dtype=np.float64)
        infinite = np.flatnonzero(np.isinf(values))
        if len(infinite):
            # Missing cells (empty, NA, nan) are imputed; an infinity would turn every
            # standardized value of the column into NaN, so the run could never train.
            raise TableError(
                f"column {name!r} has a non-finite value {cells[infinite[0]].strip()!r} on line "
                f"{infinite[0] + 2}; numbers must be finite (leave the cell empty if unknown)"
            )
        return values
    if numeric_share >= 0.5:
        line = bad[0] + 2
        raise TableError(
            f"column {name!r} is numeric but line {line} has {cells[bad[0]]!r}; "
            "fix or empty that cell"
        )
    return np.asarray([c.strip() for c in cells], dtype=object)


def as_columns(table: Any, names: list[str], *, numeric: list[str]) -> dict[str, np.ndarray]:
    """Rows (dicts or sequences in `names` order) or a column dict, as typed columns."""
    if isinstance(table, dict):
        columns = {n: np.asarray(table[n]) for n in names}
    else:
        rows = list(table)
        columns = {}
        for i, n in enumerate(names):
            columns[n] = np.asarray(
                [r[n] if isinstance(r, dict) else r[i] for r in rows], dtype=object
            )
    for n in numeric:
        columns[n] = np.asarray(
            [
                math.nan
                if v is None or (isinstance(v, str) and parse_float(v) is None)
                else (parse_float(v) if isinstance(v, str) else float(v))
                for v in columns[n]
            ],
            dtype=np.float64,
        )
    return columns


def infer_task(target: np.ndarray) -> str:
    """Classification for text targets or few integer levels, regression otherwise."""
    if target.dtype.kind != "f":
        return "classification"
    finite = target[~np.isnan(target)]
    levels = np.unique(finite)
    if np.all(levels == np.round(levels)) and len(levels) <= CLASSIFICATION_MAX_INT_LEVELS:
        return "classification"
    return "regression"


def check_target(table: Table, target: str, task: str) -> None:
    """Raise TableError unless `target` is a usable target column for `task`."""
    if target not in table.data:
        raise TableError(
            f"there is no column named {target!r}; columns are: {', '.join(table.columns)}"
        )
    values = table.data[target]
    empty = np.isnan(values) if values.dtype.kind == "f" else values == ""
    if empty.any():
        raise TableError(
            f"the target column {target!r} has {empty.sum()} empty cells "
            f"(the first on line {np.argmax(empty) + 2}; NA and nan count as empty): every row "
            "needs a target"
        )
    if task == "classification":
        n = len(np.unique(values))
        if n < 2:
            raise TableError(f"the target column {target!r} has a single class; need at least two")
        if n > MAX_CLASSES:
            raise TableError(f"the target column {target!r} has {n} classes; at most {MAX_CLASSES}")
    elif values.dtype.kind != "f":
        raise TableError(f"the target column {target!r} is not numeric, so it cannot be regressed")
    elif (too_large := np.abs(values) > FLOAT32_MAX).any():
        raise TableError(
            f"the target column {target!r} has {values[too_large][0]:g} on line "
            f"{np.argmax(too_large) + 2}, beyond the range of 32-bit floats that training uses"
        )
    for name in table.columns:
        column = table.data[name]
        if name != target and column.dtype.kind != "f" and len(set(column)) > MAX_CATEGORIES:
            raise TableError(
                f"column {name!r} has {len(set(column))} distinct text values; at most "
                f"{MAX_CATEGORIES} can be one-hot encoded (drop it or make it numeric)"
            )
