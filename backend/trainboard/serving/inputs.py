"""Checking a predict request's raw rows against what the model was trained on, with
sentences naming the row, the column and the problem."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainboard.inference import TrainedModel
from trainboard.training.data.tables import parse_float


class InputProblem(ValueError):
    """Rows the model cannot take, and why."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """`value` as the message quotes it, cut short: a client's text is echoed, not its megabyte."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any, where: str) -> float:
    """`value` as a finite float; JSON integers can be too large for one."""
    try:
        number = float(value)
    except OverflowError:
        raise InputProblem(f"{where} has a number too large for a float") from None
    if not math.isfinite(number):
        raise InputProblem(f"{where} has a value that is not finite")
    return number


def _flatten(value: Any, where: str, out: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _flatten(item, where, out)
    elif _is_number(value):
        out.append(_number(value, where))
    else:
        raise InputProblem(f"{where} has {_shown(value)} where a number belongs")


def _plain_rows(inputs: list[Any], width: int) -> np.ndarray | None:
    """The common case fast: flat rows of `width` finite JSON numbers (no bools); None for
    anything else, which the slow path then names."""
    numbers = (int, float)
    if not all(
        type(row) is list and len(row) == width and all(type(v) in numbers for v in row)
        for row in inputs
    ):
        return None
    try:
        array = np.asarray(inputs, dtype=np.float64)
    except OverflowError:
        return None
    return array if np.isfinite(array).all() else None


def _numbers(inputs: list[Any], width: int, what: str) -> np.ndarray:
    fast = _plain_rows(inputs, width)
    if fast is not None:
        return fast
    rows = []
    for i, row in enumerate(inputs):
        values: list[Any] = []
        _flatten(row, f"inputs[{i}]", values)
        if len(values) != width:
            raise InputProblem(f"inputs[{i}] has {len(values)} values; {what} has {width}")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64)


def _tokens(inputs: list[Any], length: int, vocab: int) -> np.ndarray:
    rows = _numbers(inputs, length, f"a sequence of {length} token ids")
    bad = np.flatnonzero(((rows != np.round(rows)) | (rows < 0) | (rows >= vocab)).any(axis=1))
    if len(bad):
        raise InputProblem(f"inputs[{bad[0]}] has a token that is not an integer in [0, {vocab})")
    return rows.astype(np.int64)


def _cell(value: Any, where: str, numeric: bool) -> Any:
    if value is None:
        return None
    if numeric:
        if isinstance(value, str):
            parsed = parse_float(value)
            if parsed is None:
                raise InputProblem(f"{where} is {_shown(value)}, not a number")
            if math.isinf(parsed):
                raise InputProblem(f"{where} is not finite")
            return value
        if not _is_number(value):
            raise InputProblem(f"{where} is {_shown(value)}, not a number")
        return _number(value, where)
    if isinstance(value, dict | list):
        raise InputProblem(f"{where} is a {type(value).__name__}; a text value belongs there")
    return value


def _columns(inputs: list[Any], prep: dict[str, Any]) -> list[dict[str, Any]]:
    names: list[str] = prep["numeric"] + prep["categorical"]
    numeric = set(prep["numeric"])
    rows = []
    for i, row in enumerate(inputs):
        if isinstance(row, list):
            if len(row) != len(names):
                raise InputProblem(
                    f"inputs[{i}] has {len(row)} values; rows have {len(names)} columns "
                    f"({', '.join(names)}), or give an object keyed by column name"
                )
            row = dict(zip(names, row, strict=True))
        if not isinstance(row, dict):
            raise InputProblem(f"inputs[{i}] must be an object keyed by column name")
        unknown = [k for k in row if k not in names]
        if unknown:
            raise InputProblem(
                f"inputs[{i}] has unknown column {_shown(unknown[0])}; columns are: "
                f"{', '.join(names)}"
            )
        missing = [n for n in names if n not in row]
        if missing:
            raise InputProblem(
                f"inputs[{i}] lacks column {missing[0]!r} (give null for a missing value)"
            )
        rows.append({n: _cell(row[n], f"inputs[{i}][{n!r}]", n in numeric) for n in names})
    return rows


def parse_inputs(model: TrainedModel, inputs: Any, *, max_rows: int) -> Any:
    """`inputs` checked and shaped for `model.predict`; InputProblem naming what is wrong."""
    if not isinstance(inputs, list) or not inputs:
        raise InputProblem("inputs must be a non-empty list of rows")
    if len(inputs) > max_rows:
        raise InputProblem(
            f"inputs has {len(inputs)} rows; at most {max_rows} per request "
            "(TRAINBOARD_PREDICT_MAX_ROWS)"
        )
    prep, info = model.preprocessing, model.info
    kind = prep["kind"]
    if kind == "columns":
        return _columns(inputs, prep)
    if kind == "tokens":
        return _tokens(inputs, info.input_shape[0], int(prep["vocab_size"] or 2))
    if kind == "image":
        width = math.prod(prep["shape"])
        shape = "x".join(str(s) for s in prep["shape"])
        return _numbers(inputs, width, f"an image of {shape} pixels")
    return _numbers(inputs, len(prep["mean"]), "a row of this data set")
