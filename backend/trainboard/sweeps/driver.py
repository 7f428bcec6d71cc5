"""Driving a sweep: tell the study how ended trials went, then ask it for new trials and queue
them as ordinary runs, never more than `parallelism` queued or running at once, until the sweep
has its trials.

Anyone may call `drive` after something changed (the API after a create or cancel, a worker after
a trial ended, the server's keeper every few seconds and at start). One process drives a sweep
at a time: it holds the sweep row (`store.sweeps.hold`) while it asks and queues, and whoever
finds it held only marks it dirty, so the holder drives once more before letting go. An Optuna
trial left running without a run (its driver died between ask and queue) is queued before any
new trial is asked, so trial numbers have no gaps and no sample is wasted.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

from trainboard.db import reader, session_scope
from trainboard.models import FINAL_STATUSES, Run, RunKind, RunStatus, SweepStatus
from trainboard.store import runs as run_store
from trainboard.store import sweeps as store
from trainboard.sweeps.space import SweepCreate, trial_spec
from trainboard.sweeps.study import distributions, open_study


def drive(engine: Engine, sweep_id: int) -> None:
    """Bring the sweep up to date, or leave it to the process that is doing so."""
    with session_scope(engine) as session:
        store.mark_dirty(session, sweep_id=sweep_id)
    while True:
        with session_scope(engine) as session:
            if not store.hold(session, sweep_id=sweep_id):
                return  # its holder sees `dirty` and drives again
        try:
            _step(engine, sweep_id)
        finally:
            with session_scope(engine) as session:
                again = store.release(session, sweep_id=sweep_id)
        if not again:
            return


def drive_all(engine: Engine) -> None:
    """Drive every running sweep (the server's keeper, and at start after a restart)."""
    with session_scope(reader(engine)) as session:
        ids = store.running_sweep_ids(session)
    for sweep_id in ids:
        drive(engine, sweep_id)


def _step(engine: Engine, sweep_id: int) -> None:
    from optuna.trial import TrialState

    with session_scope(reader(engine)) as session:
        sweep = store.get_sweep(session, sweep_id=sweep_id)
        runs = store.trial_runs(session, sweep_id=sweep_id)
        request = SweepCreate.model_validate(sweep.config)
        values = {
            r.id: store.objective_value(
                session,
                run_id=r.id or 0,
                metric=request.objective.metric,
                mode=request.objective.mode,
            )
            for r in runs
            if r.status == RunStatus.completed
        }
        status, name = sweep.status, sweep.name
    url = str(engine.url.render_as_string(hide_password=False))
    study = open_study(url, sweep_id, request, asked=len(runs))
    by_number = {int((r.options or {})["trial"]): r for r in runs}
    orphans: list[FrozenTrial] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run = by_number.get(trial.number)
        if run is None:
            orphans.append(trial)  # asked, never queued
        elif run.status in FINAL_STATUSES:
            _tell(study, trial.number, run, values.get(run.id))

    active = sum(1 for r in runs if r.status not in FINAL_STATUSES)
    created = len(runs)
    wanted = request.trials()
    while status == SweepStatus.running and created < wanted and active < request.parallelism:
        if orphans:
            trial = orphans.pop(0)
        else:
            study = open_study(url, sweep_id, request, asked=created)
            trial = study.ask(distributions(request))
        _queue(engine, sweep_id, request, name, trial.number, dict(trial.params))
        created += 1
        active += 1

    for trial in orphans:  # the sweep was cancelled or has its trials
        study.tell(trial.number, state=TrialState.FAIL)
    finished = created >= wanted and active == 0
    best = _best(study, by_number)
    with session_scope(engine) as session:
        store.record_progress(session, sweep_id=sweep_id, best=best, finished=finished)


def _queue(
    engine: Engine,
    sweep_id: int,
    request: SweepCreate,
    name: str,
    number: int,
    params: dict[str, Any],
) -> None:
    spec = trial_spec(request.base, params, f"{name} #{number}")
    with session_scope(engine) as session:
        run_store.create_job_run(
            session,
            spec=spec,
            sweep_id=sweep_id,
            kind=RunKind.job,
            options={"trial": number, "params": params},
            priority=request.base.priority,
        )
        store.bump(session, sweep_id=sweep_id)


def _tell(study: Any, number: int, run: Run, value: float | None) -> None:
    from optuna.trial import TrialState

    if run.status == RunStatus.completed and value is not None and math.isfinite(value):
        study.tell(number, value)
    elif run.status == RunStatus.pruned:
        study.tell(number, state=TrialState.PRUNED)
    else:  # failed, diverged, cancelled, or a completed trial without the metric
        study.tell(number, state=TrialState.FAIL)


def _best(study: Any, by_number: dict[int, Run]) -> tuple[int, float, dict[str, Any]] | None:
    try:
        trial = study.best_trial
    except ValueError:  # no trial has finished yet
        return None
    run = by_number.get(trial.number)
    if run is None or trial.value is None:
        return None
    return run.id or 0, float(trial.value), dict(trial.params)


def sweep_of(session: Any, run_id: int) -> int | None:
    """The sweep a run is a trial of, if any."""
    run = session.get(Run, run_id)
    return None if run is None else run.sweep_id
