"""Sweeps: create (every trial's spec checked first), list, read, cancel, parameter importance,
and live events of one sweep."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy import Engine

from trainboard.api.deps import DatabaseDep, EngineDep, SettingsDep
from trainboard.api.metrics import KEY, query_error
from trainboard.api.validation import check_spec_references
from trainboard.api.views import run_public
from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.models import Sweep
from trainboard.schemas import METRIC_KEY_PATTERN, SweepCurves, SweepList, SweepPublic, TrialPublic
from trainboard.store import sweeps as store
from trainboard.sweeps.driver import drive
from trainboard.sweeps.space import SweepCreate, probe_specs, trial_spec
from trainboard.training.registry import describe_validation_error

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
log = logging.getLogger("trainboard")
SweepId = Annotated[int, Path(ge=1, le=2**31 - 1)]
EVENT_POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0


def space_error(path: str, message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ["body", "space", path], "msg": message, "input": value}]
    )


def check_space(db: DatabaseDep, settings: Settings, request: SweepCreate) -> None:
    """422 naming the path when some value of the space gives a spec that cannot run."""
    if request.sampler == "grid":
        try:
            request.grid()
        except ValueError as exc:
            path = str(exc).split(":")[0]
            loc = ["body", "space", path] if path in request.space else ["body", "sampler"]
            raise RequestValidationError(
                [{"type": "value_error", "loc": loc, "msg": str(exc), "input": request.sampler}]
            ) from None
    with db.read() as session:
        for path, params in probe_specs(request):
            try:
                spec = trial_spec(request.base, params, "probe")
                check_spec_references(session, spec, settings, tag=None)
            except ValidationError as exc:
                raise space_error(path, describe_validation_error(exc), params) from None
            except RequestValidationError as exc:
                detail = exc.errors()[0]
                raise space_error(path, str(detail.get("msg")), params) from None


def sweep_public(session: Any, sweep: Sweep, settings: Settings, *, with_runs: bool) -> SweepPublic:
    request = SweepCreate.model_validate(sweep.config)
    runs = store.trial_runs(session, sweep_id=sweep.id or 0)
    values = store.objective_values(
        session,
        run_ids=[r.id or 0 for r in runs],
        metric=request.objective.metric,
        mode=request.objective.mode,
    )
    trials = []
    for run in runs:
        options = run.options or {}
        pruned = run.summary.get("pruned") or {}
        trials.append(
            TrialPublic(
                run_id=run.id or 0,
                number=int(options.get("trial", -1)),
                params=options.get("params", {}),
                status=run.status,
                value=values.get(run.id or 0),
                pruned_epoch=pruned.get("epoch"),
                pruned_against=pruned.get("against"),
            )
        )
    config = sweep.config
    return SweepPublic(
        id=sweep.id or 0,
        name=sweep.name,
        status=sweep.status,
        n_trials=request.trials(),
        parallelism=request.parallelism,
        sampler=request.sampler,
        pruner=request.pruner,
        objective=config["objective"],
        space=config["space"],
        base=config["base"],
        created_at=sweep.created_at,
        finished_at=sweep.finished_at,
        best_run_id=sweep.best_run_id,
        best_value=sweep.best_value,
        best_params=sweep.best_params,
        trials=trials,
        runs=[run_public(r, settings) for r in runs] if with_runs else None,
    )


def drive_now(engine: Engine, sweep_id: int) -> None:
    try:
        drive(engine, sweep_id)
    except Exception:  # the keeper drives it again within seconds
        log.exception("driving sweep %s failed", sweep_id)


@router.post("", status_code=201)
def create_sweep(
    body: Annotated[SweepCreate, Body()], db: DatabaseDep, settings: SettingsDep, engine: EngineDep
) -> SweepPublic:
    check_space(db, settings, body)
    with db.write() as session:
        sweep = store.create_sweep(session, name=body.name, config=body.model_dump(mode="json"))
        sweep_id = sweep.id or 0
    drive_now(engine, sweep_id)
    return read_sweep(sweep_id, db, settings, runs=True)


@router.get("")
def list_sweeps(
    db: DatabaseDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SweepList:
    with db.read() as session:
        rows, total = store.list_sweeps(session, limit=limit, offset=offset)
        items = [sweep_public(session, s, settings, with_runs=False) for s in rows]
    return SweepList(items=items, total=total)


@router.get("/{sweep_id}")
def read_sweep(
    sweep_id: SweepId, db: DatabaseDep, settings: SettingsDep, runs: bool = True
) -> SweepPublic:
    """The sweep and its trials; with `runs=false` without the trials' whole Run objects (the
    page needs only the trials: 1,000 runs with their specs are megabytes)."""
    with db.read() as session:
        sweep = store.get_sweep(session, sweep_id=sweep_id)
        return sweep_public(session, sweep, settings, with_runs=runs)


@router.post("/{sweep_id}/cancel", status_code=202)
def cancel_sweep(
    sweep_id: SweepId, db: DatabaseDep, settings: SettingsDep, engine: EngineDep
) -> SweepPublic:
    with db.write() as session:
        store.cancel_sweep(session, sweep_id=sweep_id)
    drive_now(engine, sweep_id)  # tells the study the cancelled trials failed
    return read_sweep(sweep_id, db, settings, runs=True)


@router.get("/{sweep_id}/importance")
def sweep_importance(sweep_id: SweepId, db: DatabaseDep, settings: SettingsDep) -> dict[str, Any]:
    """Each parameter's importance for the objective (Optuna's default evaluator, over the
    completed trials), normalised to sum 1; `{}` until two different trials have completed.
    Kept per sweep until a trial changes (study.ImportanceCache)."""
    from trainboard.sweeps.study import importance_cache

    key = (str(db.engine.url), sweep_id)
    with db.read() as session:
        found = store.get_sweep(session, sweep_id=sweep_id)
        marker = store.change_marker(session, sweep_id=sweep_id)
        cached = importance_cache.by_marker(key, marker)
        if cached is not None:
            return {"importances": cached}
        sweep = sweep_public(session, found, settings, with_runs=False)
    request = SweepCreate.model_validate(
        {"base": sweep.base, "space": sweep.space, "objective": sweep.objective}
    )
    finished = [
        (t.params, t.value) for t in sweep.trials if t.status == "completed" and t.value is not None
    ]
    return {"importances": importance_cache.get(key, marker, request, finished)}


@router.get("/{sweep_id}/curves")
def sweep_curves(
    sweep_id: SweepId,
    db: DatabaseDep,
    key: Annotated[str, Query(max_length=200)],
    runs: Annotated[str | None, Query(max_length=20_000)] = None,
    max_points: Annotated[int, Query(ge=10, le=100_000)] = 2000,
) -> SweepCurves:
    """The trials' series of one metric in one answer (`runs=1,2,...`: only those trials), so
    that a page of 1,000 trials makes one request, not 1,000."""
    if not KEY.match(key):
        raise query_error("key", f"{key!r} is not a metric key ({METRIC_KEY_PATTERN})", key)
    run_ids = None if runs is None else run_id_list(runs)
    with db.read() as session:
        store.get_sweep(session, sweep_id=sweep_id)
        series = store.trial_curves(
            session, sweep_id=sweep_id, key=key, run_ids=run_ids, max_points=max_points
        )
    return SweepCurves(key=key, series=series)


def run_id_list(runs: str) -> list[int]:
    """The run ids of `runs=1,2,...`; 422 naming the first that is not one."""
    ids = []
    for part in filter(None, runs.split(",")):
        if not part.isdigit() or not 1 <= int(part) <= 2**31 - 1:
            raise query_error("runs", f"{part!r} is not a run id", runs)
        ids.append(int(part))
    return ids


@router.get("/{sweep_id}/events")
async def sweep_events(
    sweep_id: SweepId, request: Request, db: DatabaseDep, settings: SettingsDep
) -> StreamingResponse:
    """Server-sent events: `sweep` (the Sweep without its runs) whenever a trial is queued,
    progresses, ends or the sweep's best changes; the first right away."""
    with db.read() as session:
        store.get_sweep(session, sweep_id=sweep_id)  # 404 before the stream starts

    def snapshot(last: tuple[int, int] | None) -> tuple[tuple[int, int], str | None]:
        with session_scope(reader(db.engine)) as session:
            marker = store.change_marker(session, sweep_id=sweep_id)
            if marker == last:
                return marker, None
            sweep = store.get_sweep(session, sweep_id=sweep_id)
            body = sweep_public(session, sweep, settings, with_runs=False)
        return marker, body.model_dump_json(exclude={"runs"})

    async def stream() -> AsyncIterator[str]:
        last: tuple[int, int] | None = None
        quiet = 0.0
        while not await request.is_disconnected():
            last, data = await anyio.to_thread.run_sync(snapshot, last)
            if data is not None:
                yield f"event: sweep\ndata: {data}\n\n"
                quiet = 0.0
            elif quiet >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                quiet = 0.0
            await anyio.sleep(EVENT_POLL_SECONDS)
            quiet += EVENT_POLL_SECONDS

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
