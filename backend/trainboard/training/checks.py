"""The checks that run as jobs of their own kind, through the queue like any run: `lr_find`
(the learning-rate range test, `training/lr_find.py`) and `preflight` (overfit one batch,
`training/preflight.py`). Each takes a RunSpec and its settings, builds the spec's model and
optimizer as a run would, and ends `completed` with its answer in the run's summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from trainboard.training.check_settings import LrFindSettings, PreflightSettings

if TYPE_CHECKING:  # types only: the checks and their torch load when a check runs
    from trainboard.training.exits import Exit, Outcome
    from trainboard.training.sinks import Sink
    from trainboard.training.spec import RunSpec


@dataclass(frozen=True)
class Check:
    """A kind of check: its settings, the function that runs it, and whether an Outcome's
    summary says it passed (for the command line's exit status)."""

    settings: type[BaseModel]
    module: str  # the module of `run`, loaded when a check runs (it loads torch)
    passed: Callable[[dict[str, Any]], bool]


CHECKS: dict[str, Check] = {
    "lr_find": Check(LrFindSettings, "lr_find", lambda s: s.get("suggested_lr") is not None),
    "preflight": Check(
        PreflightSettings, "preflight", lambda s: bool(s.get("preflight", {}).get("passed"))
    ),
}


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
    import importlib

    from trainboard.training.setup import build_setup

    check = CHECKS[kind]
    settings = check.settings.model_validate(options)
    setup = build_setup(spec, uploads_dir=uploads_dir, device=device, max_parameters=max_parameters)
    run = getattr(importlib.import_module(f"trainboard.training.{check.module}"), check.module)
    return run(spec, setup, settings, sink=sink, should_stop=should_stop)
