"""`trainboard.sweep(body)`: a sweep from Python, run to its end in this process (see
`sweeps/foreground.py`), with the same checks as `POST /api/sweeps`; returns the Sweep as the
API shows it, so `result["best_params"]` is the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError


class SweepProblem(ValueError):
    """The sweep body is not one that can run; the message names the field."""


def run_sweep(
    body: dict[str, Any], *, home: str | Path | None = None, database_url: str | None = None
) -> dict[str, Any]:
    """Check `body` (a sweep, as POST /api/sweeps takes), run it here, return the Sweep."""
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
