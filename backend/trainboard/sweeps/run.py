"""`trainboard.sweep(...)` from Python, in two forms:

- `trainboard.sweep(fn, space={...}, n_trials=...)`: a function that trains and returns its
  validation metrics, searched in this process with each trial a tracked run (`function.py`);
- `trainboard.sweep(body)`: a sweep body as `POST /api/sweeps` takes, run to its end in this
  process (`foreground.py`) with the same checks, returning the Sweep as the API shows it.

Either way `result["best_params"]` is the answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from trainboard.sweeps.space import SweepProblem

__all__ = ["SweepProblem", "run_sweep"]


def run_sweep(
    body: dict[str, Any] | Callable[[dict[str, Any]], Any],
    space: dict[str, Any] | None = None,
    *,
    home: str | Path | None = None,
    database_url: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Search with a function (`body` callable: see `function.sweep_function`, which takes
    `space` and `options`), or check `body` (a sweep, as POST /api/sweeps takes), run it
    here and return the Sweep."""
    if callable(body):
        from trainboard.sweeps.function import sweep_function

        if space is None:
            raise SweepProblem("invalid sweep: space: a function sweep needs a space to search")
        return sweep_function(body, space, **options)
    if space is not None or options:
        raise SweepProblem("invalid sweep: a sweep body holds its space and settings itself")
    from trainboard.api.deps import Database
    from trainboard.api.sweeps import check_space, sweep_public
    from trainboard.config import Settings
    from trainboard.db import init_db, make_engine, reader, session_scope
    from trainboard.store.sweeps import get_sweep
    from trainboard.sweeps.foreground import sweep_in_foreground
    from trainboard.sweeps.space import SweepCreate
    from trainboard.training.registry import describe_validation_error

    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = Path(home)
    if database_url is not None:
        overrides["database_url"] = database_url
    settings = Settings(**overrides)
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    try:
        request = SweepCreate.model_validate(body)
        check_space(Database(engine), settings, request)
    except ValidationError as exc:
        raise SweepProblem(f"invalid sweep: {describe_validation_error(exc)}") from None
    except RequestValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"][1:])
        raise SweepProblem(f"invalid sweep: {where}: {error['msg']}") from None
    try:
        sweep = sweep_in_foreground(settings, engine, request)
        with session_scope(reader(engine)) as session:
            fresh = get_sweep(session, sweep_id=sweep.id or 0)
            return sweep_public(session, fresh, settings, with_runs=False).model_dump(mode="json")
    finally:
        engine.dispose()
