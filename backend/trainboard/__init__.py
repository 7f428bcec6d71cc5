"""trainboard: an experiment tracker and training-job runner for PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from trainboard.client import Client
    from trainboard.inference import load_model
    from trainboard.sweeps.function import should_prune
    from trainboard.sweeps.run import run_sweep as sweep
    from trainboard.tracking.api import define_metric, finish, init, log, watch
    from trainboard.tracking.run import Run

__all__ = [
    "Client",
    "Run",
    "__version__",
    "define_metric",
    "finish",
    "init",
    "load_model",
    "log",
    "should_prune",
    "sweep",
    "watch",
]
_TRACKING = frozenset({"init", "log", "finish", "watch", "define_metric"})


def __getattr__(name: str) -> Any:
    # Lazy: `import trainboard` must not pay for torch unless these are used.
    if name == "load_model":
        from trainboard.inference import load_model

        return load_model
    if name == "should_prune":
        from trainboard.sweeps.function import should_prune

        return should_prune
    if name == "sweep":
        from trainboard.sweeps.run import run_sweep

        return run_sweep
    if name == "Client":
        from trainboard.client import Client

        return Client
    if name in _TRACKING or name in ("run", "config", "summary"):
        from trainboard.tracking import api

        if name in _TRACKING:
            return getattr(api, name)
        # Read each time: `trainboard.run` is the current run, as `wandb.run` is.
        if name == "run":
            return api.current
        return getattr(api.current, name) if api.current is not None else {}
    if name == "Run":
        from trainboard.tracking.run import Run

        return Run
    raise AttributeError(name)
