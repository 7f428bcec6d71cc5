"""`trainboard.sweep(fn, space=...)`: the guide's advice, "wrap training into a function that
returns validation metrics", searched by an Optuna study in this process, with every trial a
tracked run on the trainboard server (`trainboard.init` around the call).

    def train(config):
        for epoch in range(1, 21):
            ...
            trainboard.log({"val_loss": val_loss}, step=epoch)
            if trainboard.should_prune():   # the median pruner says it is hopeless
                return
        return {"val_loss": val_loss}

    best = trainboard.sweep(train, space={"lr": {"type": "float", "low": 1e-4, "high": 1e-1,
                                                  "log": True}}, n_trials=20)

The space, sampler, pruner and objective are those of `POST /api/sweeps` (its dimensions take
any name here, not spec paths). Each value of the objective metric that the function logs is
reported to its trial, so the pruner can stop it; the function's return (a number, or a dict
holding the metric) is the trial's value, else the last value it logged. A trial that raises is
failed and the search goes on; Ctrl-C ends the search. Runs are tagged `sweep:<name>`: the runs
list filters them and the compare view overlays them.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from trainboard.sweeps.space import Search, SweepProblem
from trainboard.training.spec import RunName

if TYPE_CHECKING:
    import optuna

TrialFunction = Callable[[dict[str, Any]], Any]


class FunctionSearch(Search):
    """A search over a function's arguments: a name for its runs, and the study's seed."""

    name: RunName = "sweep"


class _Current:
    """The trial whose function is running: the pruner's answer for `should_prune`."""

    trial: optuna.Trial | None = None
    told_to_stop = False


_current = _Current()


def should_prune() -> bool:
    """Whether the sweep's pruner would stop the running trial now (after the objective was
    logged for this step); False outside `trainboard.sweep`."""
    trial = _current.trial
    if trial is None:
        return False
    try:
        stop = trial.should_prune()
    except Exception:  # a tracker must never break the training it tracks
        return False
    _current.told_to_stop = _current.told_to_stop or stop
    return stop


def sweep_function(
    fn: TrialFunction,
    space: dict[str, Any],
    *,
    url: str | None = None,
    token: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Search `space` for the best value of `fn`'s objective; every trial is a run on the
    server at `url` (default `$TRAINBOARD_URL`). `options`: `n_trials`, `sampler`, `pruner`,
    `objective` ({"metric", "mode"}), `seed`, `name`. Returns the best trial (`best_value`,
    `best_params`, `best_run_id`) and every trial."""
    import optuna

    from trainboard.sweeps.study import distributions, searching
    from trainboard.training.registry import describe_validation_error

    try:
        search = FunctionSearch.model_validate({"space": space, **options})
        study = optuna.create_study(**searching(search, seed=search.seed))
    except ValidationError as exc:
        raise SweepProblem(f"invalid sweep: {describe_validation_error(exc)}") from None
    except ValueError as exc:  # a grid without steps, or too big
        raise SweepProblem(f"invalid sweep: {exc}") from None
    dims = distributions(search)
    trials = [_trial(fn, study.ask(dims), search, url, token) for _ in range(search.trials())]
    done = [t for t in trials if t["state"] == "completed"]
    best = (min if search.objective.mode == "min" else max)(
        done, key=lambda t: t["value"], default=None
    )
    return {
        "name": search.name,
        "objective": search.objective.model_dump(),
        "best_value": best and best["value"],
        "best_params": best and best["params"],
        "best_run_id": best and best["run_id"],
        "trials": trials,
    }


def _trial(
    fn: TrialFunction,
    trial: optuna.Trial,
    search: FunctionSearch,
    url: str | None,
    token: str | None,
) -> dict[str, Any]:
    """Run one trial in a tracked run and tell the study how it ended."""
    import optuna

    from trainboard.tracking import api

    metric = search.objective.metric
    params = dict(trial.params)
    run = api.init(
        name=f"{search.name}-{trial.number}",
        config=params,
        tags=[f"sweep:{search.name}"],
        url=url,
        token=token,
    )

    def report(key: str, step: int, value: float) -> None:
        if key == metric and math.isfinite(value):
            trial.report(value, step)

    run.observers.append(report)
    _current.trial, _current.told_to_stop = trial, False
    state, value, error = "completed", None, None
    try:
        value = _objective(fn(dict(params)), metric, run.summary)
        if _current.told_to_stop:
            state = "pruned"
        elif value is None:
            state, error = "failed", f"the function returned no {metric!r} and logged none"
    except optuna.TrialPruned:
        state = "pruned"
    except KeyboardInterrupt:
        study_tell(trial, "failed", None)
        run.finish("failed", "the sweep was interrupted")
        raise
    except Exception as exc:
        traceback.print_exc()
        state, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        _current.trial = None
    if state == "pruned":
        value = run.summary.get(metric)
    if value is not None:
        run.summary[metric] = value
    study_tell(trial, state, value)
    run.finish(state, error)
    return {
        "number": trial.number,
        "params": params,
        "value": value,
        "state": state,
        "run_id": run.id,
        "error": error,
    }


def _objective(result: Any, metric: str, summary: dict[str, Any]) -> float | None:
    """The trial's value: what the function returned (a number, or a dict holding `metric`),
    else the last value of `metric` it logged."""
    if isinstance(result, dict) and metric in result:
        result = result[metric]
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        return float(result) if math.isfinite(result) else None
    last = summary.get(metric)
    return float(last) if isinstance(last, (int, float)) and math.isfinite(last) else None


def study_tell(trial: optuna.Trial, state: str, value: float | None) -> None:
    """Tell the study how `trial` ended. Once its grid is covered, a grid sampler asks the
    study to stop, which only `study.optimize` may do: the trial is stored all the same."""
    import optuna

    try:
        if state == "completed" and value is not None:
            trial.study.tell(trial, value)
        elif state == "pruned":
            trial.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except RuntimeError:
        if not isinstance(trial.study.sampler, optuna.samplers.GridSampler):
            raise
