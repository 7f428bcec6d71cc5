"""A sweep's Optuna study, kept in Optuna's own tables of trainboard's database (Optuna's RDB
storage on the same SQLAlchemy URL, SQLite or PostgreSQL), so that it survives restarts and
every process that drives the sweep or reports a trial's epochs sees the same study.

Samplers are made afresh for each ask, seeded with (sweep seed, trials so far): any process
can ask next and a sweep is reproducible (the grid sampler with the sweep's seed alone: its
shuffled grid must be the same in every process). The median pruner stops a trial whose
objective at an epoch is worse than the median of the finished trials at that epoch, once
`STARTUP_TRIALS` trials have finished.
"""

from __future__ import annotations

import statistics
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text

if TYPE_CHECKING:
    import optuna

    from trainboard.sweeps.space import Search, SweepCreate

STARTUP_TRIALS = 3  # finished trials before the median pruner prunes


def study_name(sweep_id: int) -> str:
    return f"sweep-{sweep_id}"


@cache
def storage(url: str) -> optuna.storages.RDBStorage:
    """One Optuna storage per database URL and process (making one checks the schema)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if not url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    kwargs["connect_args"] = {"timeout": 30}  # wait for the write lock, as trainboard does
    made = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)

    @event.listens_for(made.engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # As trainboard's own connections (db.make_engine): WAL needs no fsync per commit.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    made.engine.dispose()  # the connections opened before the listener are not reused
    return made


def distributions(request: Search) -> dict[str, optuna.distributions.BaseDistribution]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for path, d in request.space.items():
        if d.type == "float":
            out[path] = FloatDistribution(d.low, d.high, log=d.log, step=d.step)
        elif d.type == "int":
            out[path] = IntDistribution(d.low, d.high, log=d.log, step=d.step)
        else:
            out[path] = CategoricalDistribution(d.choices)
    return out


def searching(search: Search, *, seed: int) -> dict[str, Any]:
    """`optuna.create_study`'s sampler, pruner and direction for `search`, the sampler seeded
    with `seed` (a grid's order comes from the search's own seed: the same in every process,
    so that grid ids, the trial numbers, name the same points everywhere)."""
    import optuna

    sampler: optuna.samplers.BaseSampler
    if search.sampler == "grid":
        sampler = optuna.samplers.GridSampler(search.grid(), seed=search.seed)
    elif search.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS)
        if search.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    direction = "minimize" if search.objective.mode == "min" else "maximize"
    return {"sampler": sampler, "pruner": pruner, "direction": direction}


def open_study(url: str, sweep_id: int, request: SweepCreate, *, asked: int = 0) -> optuna.Study:
    """The sweep's study (made on first use), with its sampler seeded for the next ask."""
    import optuna

    return optuna.create_study(
        study_name=study_name(sweep_id),
        storage=storage(url),
        load_if_exists=True,
        **searching(request, seed=request.seed * 100_003 + asked),
    )


def median_at(finished: list[optuna.trial.FrozenTrial], epoch: int) -> float | None:
    """The median of the finished trials' values at `epoch`: what a pruned trial lost to."""
    values = [t.intermediate_values[epoch] for t in finished if epoch in t.intermediate_values]
    return statistics.median(values) if values else None


def count_finished(url: str, study: optuna.Study) -> int:
    """How many of the study's trials are complete, counted in Optuna's table (its storage's
    `get_n_trials` loads every trial to count them)."""
    with storage(url).engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT COUNT(*) FROM trials WHERE study_id = :id AND state = 'COMPLETE'"),
                {"id": study._study_id},
            ).scalar_one()
        )


def importances(
    request: SweepCreate, finished: list[tuple[dict[str, Any], float]]
) -> dict[str, float]:
    """Each parameter's importance for the objective (Optuna's default evaluator), from the
    finished trials' (params, objective value); empty until two differ in their params. The
    trials are handed to an in-memory study: reading them back from Optuna's tables would
    load every epoch value of every trial."""
    import optuna

    if len({tuple(sorted(map(str, params.items()))) for params, _ in finished}) < 2:
        return {}
    dists = distributions(request)
    study = optuna.create_study(
        direction="minimize" if request.objective.mode == "min" else "maximize"
    )
    study.add_trials(
        [
            optuna.trial.create_trial(
                params={k: v for k, v in params.items() if k in dists},
                distributions={k: dists[k] for k in params if k in dists},
                value=value,
            )
            for params, value in finished
        ]
    )
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every finished trial has the same value
        return {}
