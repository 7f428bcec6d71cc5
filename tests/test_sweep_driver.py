"""Driving a sweep against the database (SQLite and PostgreSQL): what a driver that died
between asking the study and queueing the trial leaves behind is picked up, not lost."""

from __future__ import annotations

from sqlalchemy import Engine
from trainboard.db import session_scope
from trainboard.store import sweeps as store
from trainboard.sweeps.driver import drive
from trainboard.sweeps.space import SweepCreate
from trainboard.sweeps.study import distributions, open_study

BODY = {
    "name": "orphans",
    "base": {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "epochs": 1},
    "space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
    "n_trials": 3,
    "parallelism": 2,
    "sampler": "random",
}


def test_a_trial_asked_but_never_queued_is_queued_with_its_params_before_a_new_one(
    engine: Engine,
) -> None:
    request = SweepCreate.model_validate(BODY)
    with session_scope(engine) as session:
        sweep_id = store.create_sweep(
            session, name=request.name, config=request.model_dump(mode="json")
        ).id
    assert sweep_id is not None
    url = engine.url.render_as_string(hide_password=False)
    # The state a driver killed between `ask` and queueing the run leaves: trial 0 running in
    # the study, no run for it.
    orphan = open_study(url, sweep_id, request).ask(distributions(request))

    drive(engine, sweep_id)

    with session_scope(engine) as session:
        runs = store.trial_runs(session, sweep_id=sweep_id)
    trials = sorted((r.options or {})["trial"] for r in runs)
    assert trials == [0, 1], "the orphan and one new trial, as parallelism 2 allows"
    queued_orphan = next(r for r in runs if (r.options or {})["trial"] == 0)
    assert (queued_orphan.options or {})["params"] == orphan.params
    assert queued_orphan.spec["optimizer"]["lr"] == orphan.params["optimizer.lr"]
