"""The module-level, wandb-shaped API: `trainboard.init/log/finish`, `trainboard.run`.

import trainboard as wandb
wandb.init(project="digits", config={"lr": 1e-3})
for step in range(100):
    wandb.log({"loss": ...})
wandb.finish()
"""

from __future__ import annotations

from typing import Any

from trainboard.tracking.run import Config, Run

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
    return current


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
