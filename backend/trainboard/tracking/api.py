"""The module-level, wandb-shaped API: `trainboard.init/log/finish`, `trainboard.run`.

import trainboard as wandb
wandb.init(project="digits", config={"lr": 1e-3})
for step in range(100):
    wandb.log({"loss": ...})
wandb.finish()
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from trainboard.tracking.run import Run
from trainboard.tracking.values import Config

current: Run | None = None


def init(
    name: str | None = None,
    config: Any = None,
    tags: list[str] | None = None,
    url: str | None = None,
    token: str | None = None,
    *,
    project: str | None = None,
    notes: str | None = None,
    mode: str | None = None,
    **_ignored: Any,
) -> Run:
    """Start a run (finishing the current one, if any); wandb's other arguments are ignored."""
    global current
    if current is not None and not current.finished:
        current.finish()
    all_tags = [*(tags or []), *([project] if project else [])]
    offline = mode in ("offline", "disabled", "dryrun")
    current = Run(
        name, config, all_tags, url, token, notes=notes or "", mode="offline" if offline else None
    )
    _expose_config(current.config)
    return current


def _expose_config(config: Config) -> None:
    """`trainboard.config` is the run's config, as `wandb.config` is. The package's
    `__getattr__` cannot give it once the settings submodule `trainboard.config` is imported
    (Python sets the package attribute to the submodule), so the attribute is set here, after
    importing the submodule: an import of a module already loaded leaves the attribute alone.
    `from trainboard.config import Settings` still finds the module, in sys.modules."""
    importlib.import_module("trainboard.config")
    sys.modules["trainboard"].config = config  # type: ignore[attr-defined]


def _run() -> Run:
    # wandb raises when `log` comes before `init`; a tracker starting a run is kinder.
    return current if current is not None else init()


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """Log `data` into the current run (started with defaults if there is none)."""
    _run().log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run: `failed` for a non-zero `exit_code`."""
    global current
    if current is not None:
        current.finish(exit_code=exit_code)
        current = None


def watch(model: Any, *args: Any, **kwargs: Any) -> None:
    """Log per-layer gradient norms of `model` into the current run."""
    _run().watch(model, *args, **kwargs)


def define_metric(*args: Any, **kwargs: Any) -> None:
    """Accepted and ignored: every metric is charted against its step already."""


def config() -> Config:
    return _run().config


def summary() -> dict[str, Any]:
    return _run().summary
