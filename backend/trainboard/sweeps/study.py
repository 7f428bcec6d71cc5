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
import threading
from collections import OrderedDict
from collections.abc import Hashable
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text

if TYPE_CHECKING:
    import optuna

    from trainboard.sweeps.space import Search, SweepCreate

STARTUP_TRIALS = 3  # finished trials before the median pruner prunes
# Sweeps whose last importances a server process keeps: each holds its finished trials' params
# and values (a few hundred KiB for 1,000 trials), and a page shows one sweep at a time.
IMPORTANCE_SWEEPS = 16

Finished = list[tuple[dict[str, Any], float]]  # a finished trial's params and objective value


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


def importances(request: SweepCreate, finished: Finished) -> dict[str, float]:
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


class ImportanceCache:
    """The importances last computed for each of the `size` sweeps read most recently.

    Optuna's evaluator fits a random forest: 0.2-0.7 s for 1,000 trials, on every page load.
    An entry is found by the sweep's change marker (what the live events watch: it moves
    whenever a trial changes status or logs an epoch), so that an unchanged sweep costs no read
    of its trials; failing that, by the finished trials themselves, so that epochs of trials in
    training recompute nothing. A trial that finishes changes both, and the importances are
    computed again. Safe to share between a server's request threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[Hashable, Hashable, dict[str, float]]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def by_marker(self, key: Hashable, marker: Hashable) -> dict[str, float] | None:
        """The importances stored for `key` (database, sweep) at this change marker, if any."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != marker:
                return None
            self._entries.move_to_end(key)
            return entry[2]

    def get(
        self, key: Hashable, marker: Hashable, request: SweepCreate, finished: Finished
    ) -> dict[str, float]:
        """`importances(request, finished)`, computed only when the finished trials (or the
        objective's direction) differ from those of the entry stored for `key`."""
        inputs = (
            request.objective.mode,
            tuple((tuple(sorted(map(str, params.items()))), value) for params, value in finished),
        )
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[1] == inputs:
            found = entry[2]
        else:  # outside the lock: one sweep's fit does not hold up another sweep's read
            found = importances(request, finished)
        with self._lock:
            self._entries[key] = (marker, inputs, found)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return found


importance_cache = ImportanceCache(IMPORTANCE_SWEEPS)
