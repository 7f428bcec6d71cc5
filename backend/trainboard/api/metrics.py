"""Metrics: columnar reads with honest downsampling, and batched writes for external runs."""

from __future__ import annotations

import re
import time
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError

from trainboard.api.deps import DatabaseDep, PointWriterDep, RunDep, RunId, SettingsDep
from trainboard.schemas import METRIC_KEY_PATTERN, MetricsRead, MetricsWrite
from trainboard.store.metrics import metric_keys, series_json

router = APIRouter(prefix="/runs/{run_id}/metrics", tags=["metrics"])

MAX_KEYS = 200
KEY = re.compile(METRIC_KEY_PATTERN)


@router.get("", response_model=MetricsRead)
def read_metrics(
    run: RunDep,
    db: DatabaseDep,
    keys: Annotated[str | None, Query(max_length=4000)] = None,
    max_points: Annotated[int, Query(ge=10, le=1_000_000)] = 2000,
    x_min: Annotated[int | None, Query(ge=-(2**62), le=2**62)] = None,
    x_max: Annotated[int | None, Query(ge=-(2**62), le=2**62)] = None,
) -> Response:
    cursor = f"{run.metric_seq}-0-0-0"  # read before the points: later ones arrive live
    with db.read() as session:
        wanted = requested_keys(keys) if keys else metric_keys(session, run_id=run.id)
        series = series_json(
            session, run_id=run.id, keys=wanted, max_points=max_points, x_min=x_min, x_max=x_max
        )
    # The body as MetricsRead has it, written here: a million points through the response
    # model would be encoded on the event loop, stalling every other request and stream.
    body = f'{{"run_id":{run.id},"series":{series},"cursor":"{cursor}"}}'
    return Response(body, media_type="application/json")


def requested_keys(keys: str) -> list[str]:
    """The distinct keys of `keys=a,b,...` in their order; 422 for a bad key or too many."""
    wanted = list(dict.fromkeys(k for k in keys.split(",") if k))
    if len(wanted) > MAX_KEYS:
        raise query_error("keys", f"at most {MAX_KEYS} distinct keys a request", len(wanted))
    for key in wanted:
        if not KEY.match(key):
            raise query_error("keys", f"{key!r} is not a metric key ({METRIC_KEY_PATTERN})", key)
    return wanted


def query_error(name: str, message: str, value: object) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ["query", name], "msg": message, "input": value}]
    )


@router.post("", status_code=202)
async def write_metrics(
    run_id: RunId, body: MetricsWrite, writer: PointWriterDep, settings: SettingsDep
) -> dict[str, float]:
    """Write points (none: a heartbeat); the same (key, step) again replaces its value. The
    answer says how often a silent client should send a heartbeat to stay running."""
    points = [(p["key"], p["step"], p["value"], p.get("timestamp")) for p in body.points]
    deadline = time.time() + settings.external_timeout
    await writer.write(run_id=run_id, attempt=body.attempt, points=points, deadline=deadline)
    return {"accepted": len(points), "heartbeat_seconds": settings.external_timeout / 3}
