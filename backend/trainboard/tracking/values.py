"""A run's config and logged values as the server takes them."""

from __future__ import annotations

import itertools
import math
from typing import Any

# The server's bounds on a config (trainboard.jsonsafe's MAX_JSON_DEPTH and MAX_JSON_VALUES),
# less room for the `_code` description that goes with it.
CONFIG_DEPTH, CONFIG_VALUES = 16, 8000


class Config(dict[str, Any]):
    """A run's config: a dict whose keys read and write as attributes too (`config.lr`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """As dict.update; `allow_val_change` (wandb's) is accepted and ignored."""
        kwargs.pop("allow_val_change", None)
        super().update(*args, **kwargs)


def json_safe(value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """`value` as plain JSON the server takes: non-finite numbers as null, NUL characters
    removed, anything else unknown as its text, nested at most CONFIG_DEPTH levels (deeper:
    as text) and at most `budget[0]` values in all (the rest left out)."""
    if budget is None:
        budget = [CONFIG_VALUES]
    budget[0] -= 1
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth < CONFIG_DEPTH and isinstance(value, dict):
        kept = itertools.takewhile(lambda _: budget[0] > 0, value.items())
        return {json_safe(str(k)): json_safe(v, depth + 1, budget) for k, v in kept}
    if depth < CONFIG_DEPTH and isinstance(value, list | tuple):
        kept = itertools.takewhile(lambda _: budget[0] > 0, value)
        return [json_safe(v, depth + 1, budget) for v in kept]
    try:
        return json_safe(float(value), depth, budget)  # numpy and torch scalars
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return json_safe(str(value)[:1000], depth, budget)


def as_number(value: Any) -> float | None:
    """`value` as a metric's float, or None for what is not a number (text, images, tables)."""
    if isinstance(value, str | bytes):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return None


def plain(config: Any) -> dict[str, Any]:
    """A config as a dict: a dict, an argparse Namespace, or anything with `__dict__`."""
    if isinstance(config, dict):
        return dict(config)
    return dict(vars(config))
