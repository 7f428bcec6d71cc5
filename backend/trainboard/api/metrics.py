"""Metrics: columnar reads with honest downsampling, and batched writes for external runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from trainboard.api.deps import RunDep, SessionDep
from trainboard.models import MetricsRead, MetricsWrite
from trainboard.store.errors import Conflict
from trainboard.store.metrics import add_metrics, metric_keys, read_series, require_writable

router = APIRouter(prefix="/runs/{run_id}/metrics", tags=["metrics"])


@router.get("")
def read_metrics(
    run: RunDep,
    session: SessionDep,
    keys: Annotated[str | None, Query(max_length=4000)] = None,
    max_points: Annotated[int, Query(ge=10, le=1_000_000)] = 2000,
    x_min: Annotated[int | None, Query(ge=-(2**62), le=2**62)] = None,
    x_max: Annotated[int | None, Query(ge=-(2**62), le=2**62)] = None,
) -> MetricsRead:
    cursor = f"{run.metric_seq}-0-0-0"  # read before the points: later ones arrive live
    wanted = [k for k in keys.split(",") if k] if keys else metric_keys(session, run_id=run.id)
    series = read_series(
        session, run_id=run.id, keys=wanted, max_points=max_points, x_min=x_min, x_max=x_max
    )
    return MetricsRead(run_id=run.id, series=series, cursor=cursor)


@router.post("", status_code=202)
def write_metrics(run: RunDep, body: MetricsWrite, session: SessionDep) -> dict[str, int]:
    require_writable(run, run.id)
    points = [(p["key"], p["step"], p["value"], p.get("timestamp")) for p in body.points]
    if not add_metrics(session, run_id=run.id, points=points, attempt=body.attempt):
        raise Conflict(f"attempt {body.attempt} no longer holds run {run.id}")
    return {"accepted": len(points)}
