"""Named plugins (data sets, models, optimizers, schedulers) with JSON-Schema'd options."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Plugin:
    """A named factory, its options as a pydantic model, and catalog facts about it."""

    name: str
    description: str
    factory: Callable[..., Any]
    params: type[BaseModel] = NoParams
    info: dict[str, Any] = field(default_factory=dict)

    def default_params(self) -> dict[str, Any]:
        """Every option's default, as plain JSON; empty when some option has none."""
        try:
            return self.params().model_dump(mode="json")
        except ValidationError:
            return {}

    def catalog_entry(self) -> dict[str, Any]:
        schema = self.params.model_json_schema()
        # JSON Schema leaves out defaults made by a default_factory; a form needs them all.
        for key, value in self.default_params().items():
            schema.get("properties", {}).get(key, {}).setdefault("default", value)
        return {"name": self.name, "description": self.description, "params": schema, **self.info}


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "params"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class Registry:
    """Plugins of one kind: built-ins plus those installed packages declare as entry points."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._group = entry_point_group
        self._plugins: dict[str, Plugin] = {}
        self._loaded_entry_points = entry_point_group is None

    def add(self, plugin: Plugin) -> Plugin:
        self._plugins[plugin.name] = plugin
        return plugin

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        for entry in entry_points(group=self._group or ""):
            try:
                plugin = entry.load()
                if callable(plugin) and not isinstance(plugin, Plugin):
                    plugin = plugin()
                if not isinstance(plugin, Plugin):
                    raise TypeError(f"entry point gave {type(plugin).__name__}, not a Plugin")
                if plugin.name in self._plugins:
                    raise ValueError(f"name {plugin.name!r} is already taken")
                self._plugins[plugin.name] = plugin
            except Exception as exc:  # a broken plugin must not take the server down
                log.warning("ignoring %s plugin %s: %s", self.kind, entry.name, exc)

    def __iter__(self) -> Iterator[Plugin]:
        self._load_entry_points()
        return iter(list(self._plugins.values()))

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._plugins

    def get(self, name: str) -> Plugin:
        self._load_entry_points()
        try:
            return self._plugins[name]
        except KeyError:
            known = ", ".join(sorted(self._plugins))
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def validate_params(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """The options of `name`, validated and completed with defaults, as plain JSON."""
        plugin = self.get(name)
        try:
            return plugin.params.model_validate(params).model_dump(mode="json")
        except ValidationError as exc:
            raise ValueError(
                f"bad params for {self.kind} {name!r}: {describe_validation_error(exc)}"
            ) from None

    def catalog(self) -> list[dict[str, Any]]:
        return [plugin.catalog_entry() for plugin in self]
