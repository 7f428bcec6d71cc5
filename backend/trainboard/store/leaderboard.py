"""The best checkpoints across runs by one of their recorded metrics, in one query."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Float, case, func
from sqlmodel import Session, col, select

from trainboard.models import Checkpoint, Run


def best_checkpoints(
    session: Session,
    *,
    metric: str,
    mode: Literal["min", "max"],
    limit: int,
    per_run: bool = True,
) -> list[tuple[Checkpoint, Run, float]]:
    """Checkpoints ranked by `metrics[metric]` (those without a value left out), best first,
    ties by run and epoch; with `per_run`, only each run's best. The metric is read from the
    rows' JSON by the database (json_extract / ->>), bound as a parameter.

    On SQLite a row whose JSON is not valid (Infinity or NaN, which rows stored before
    sync_checkpoints sanitised its metrics may hold) has no value: json_extract would fail the
    whole query on it ("malformed JSON"). PostgreSQL never stores such a row: its json type
    refuses them on insert."""
    value = Checkpoint.metrics[metric].as_float()  # type: ignore[index]
    if session.get_bind().dialect.name == "sqlite":
        value = case((func.json_valid(col(Checkpoint.metrics)) == 1, value))
    order = value.asc() if mode == "min" else value.desc()
    ranked = (
        select(
            col(Checkpoint.id).label("checkpoint_id"),
            value.label("value"),
            func.row_number()
            .over(partition_by=col(Checkpoint.run_id), order_by=(order, col(Checkpoint.epoch)))
            .label("rank"),
        )
        .where(value.is_not(None))
        .subquery()
    )
    query = (
        select(Checkpoint, Run, ranked.c.value.cast(Float))
        .join(ranked, ranked.c.checkpoint_id == col(Checkpoint.id))
        .join(Run, col(Run.id) == col(Checkpoint.run_id))
    )
    if per_run:
        query = query.where(ranked.c.rank == 1)
    by_value = ranked.c.value.asc() if mode == "min" else ranked.c.value.desc()
    query = query.order_by(by_value, col(Checkpoint.run_id), col(Checkpoint.epoch)).limit(limit)
    return [(checkpoint, run, float(v)) for checkpoint, run, v in session.exec(query).all()]
