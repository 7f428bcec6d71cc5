"""The checks that run as jobs of their own kind, through the queue like any run: `lr_find`
(the learning-rate range test, `training/lr_find.py`) and `preflight` (overfit one batch,
`training/preflight.py`). Each takes a RunSpec and its settings, builds the spec's model and
optimizer as a run would, and ends `completed` with its answer in the run's summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from trainboard.training.check_settings import LrFindSettings, PreflightSettings

if TYPE_CHECKING:  # types only: the checks and their torch load when a check runs
    from collections.abc import Callable

    from trainboard.training.exits import Exit, Outcome
    from trainboard.training.sinks import Sink
    from trainboard.training.spec import RunSpec


SETTINGS: dict[str, type[BaseModel]] = {"lr_find": LrFindSettings, "preflight": PreflightSettings}


def run_check(
    kind: str,
    spec: RunSpec,
    options: dict[str, Any],
    *,
    sink: Sink,
    should_stop: Callable[[], Exit | None],
    uploads_dir: Path | None = None,
    device: str | None = None,
    max_parameters: int | None = None,
) -> Outcome:
    """Run the check `kind` on `spec` and return its Outcome (the caller closes `sink`)."""
    from trainboard.training.lr_find import lr_find
    from trainboard.training.preflight import preflight
    from trainboard.training.setup import build_setup

    settings = SETTINGS[kind].model_validate(options)
    setup = build_setup(spec, uploads_dir=uploads_dir, device=device, max_parameters=max_parameters)
    check = lr_find if kind == "lr_find" else preflight
    return check(spec, setup, settings, sink=sink, should_stop=should_stop)  # type: ignore[arg-type]
