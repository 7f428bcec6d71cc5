"""What a sweep searches: the request (`SweepCreate`), its dimensions over dotted RunSpec paths,
and the spec of a trial (the base spec with the trial's values set at those paths)."""

from __future__ import annotations

import copy
import itertools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainboard.training.spec import RunName, RunSpec

PATH = r"^[a-z_][a-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,5}$"
MAX_GRID = 10_000


class SweepProblem(ValueError):
    """A sweep that cannot run (from Python): the message names the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatDimension(Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)  # a grid sampler's spacing

    @model_validator(mode="after")
    def _ordered(self) -> FloatDimension:
        if not self.low <= self.high:
            raise ValueError("low must not be above high")
        if self.log and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self

    def count(self) -> int | None:
        """How many grid values (None without a step: a float range has no grid)."""
        if self.step is None:
            return None
        return int((self.high - self.low) / self.step + 1e-9) + 1

    def grid(self) -> list[float] | None:
        count = self.count()
        if count is None:
            return None
        return [round(self.low + i * (self.step or 0), 12) for i in range(count)]

    def edges(self) -> list[float]:
        return [self.low, self.high]


class IntDimension(Strict):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntDimension:
        if not self.low <= self.high:
            raise ValueError("low must not be above high")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("a log scale needs low > 0 and step 1")
        return self

    def count(self) -> int:
        return (self.high - self.low) // self.step + 1

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def edges(self) -> list[int]:
        # Computed, not listed: a range may hold billions of values.
        return [self.low, self.low + (self.count() - 1) * self.step]


Choice = str | int | float | bool | None


class CategoricalDimension(Strict):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1, max_length=100)

    def count(self) -> int:
        return len(self.choices)

    def grid(self) -> list[Choice]:
        return list(self.choices)

    def edges(self) -> list[Choice]:
        return list(self.choices)


Dimension = Annotated[
    FloatDimension | IntDimension | CategoricalDimension, Field(discriminator="type")
]


class Objective(Strict):
    metric: str = Field(default="val_loss", pattern=r"^[A-Za-z0-9_.\-/]{1,200}$")
    mode: Literal["min", "max"] = "min"


class Search(Strict):
    """What to search and how: the space, the number of trials, the sampler and pruner, and
    the objective. A queued sweep (`SweepCreate`) and a sweep of a function share it."""

    space: dict[Annotated[str, Field(pattern=PATH)], Dimension] = Field(min_length=1, max_length=32)
    n_trials: int = Field(default=20, ge=1, le=1000)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    objective: Objective = Field(default_factory=Objective)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    def grid(self) -> dict[str, list[Choice]]:
        """The grid sampler's values per path; ValueError naming a float without a step, or a
        grid too big (its size is counted before any value is listed)."""
        size = 1
        for path, dimension in self.space.items():
            count = dimension.count()
            if count is None:
                raise ValueError(f"{path}: the grid sampler needs a step for a float range")
            size *= count
            if size > MAX_GRID:
                raise ValueError(f"{path}: the grid has more than {MAX_GRID} points")
        return {path: dimension.grid() or [] for path, dimension in self.space.items()}

    def trials(self) -> int:
        """How many trials the sweep runs: `n_trials`, or the whole grid if that is smaller."""
        if self.sampler != "grid":
            return self.n_trials
        size = 1
        for values in self.grid().values():
            size *= len(values)
        return min(self.n_trials, size)


class SweepCreate(Search):
    """A sweep request: a base spec, the space to search over its dotted paths, how many
    trials at once, how, and for what."""

    name: RunName = ""
    base: RunSpec
    parallelism: int = Field(default=1, ge=1, le=64)


def set_path(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `spec` (as JSON) with `value` at the dotted `path`."""
    out = copy.deepcopy(spec)
    node = out
    *parents, leaf = path.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value
    return out


def trial_spec(base: RunSpec, params: dict[str, Any], name: str) -> RunSpec:
    """The spec a trial trains: the base with the trial's params, named after the trial. A
    trial that picks another optimizer, scheduler or model than the base's (`optimizer.name`)
    gets that one's default options, not the base's options of another (adamw's betas mean
    nothing to sgd), unless the space sets them too."""
    spec = base.model_dump(mode="json")
    for path, value in params.items():
        parent, _, leaf = path.rpartition(".")
        if leaf == "name" and parent and value != _get(spec, f"{path}"):
            spec = set_path(spec, f"{parent}.params", {})
    for path, value in params.items():
        spec = set_path(spec, path, value)
    spec["name"] = name[:200]
    return RunSpec.model_validate(spec)


def _get(spec: dict[str, Any], path: str) -> Any:
    node: Any = spec
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def probe_specs(request: SweepCreate) -> list[tuple[str, dict[str, Any]]]:
    """(path, params) the API checks before any trial runs: each dimension's edges and every
    choice alone, then every combination of the edges of all dimensions (capped), so that a
    space that can yield an invalid spec is refused up front."""
    probes = [
        (path, {path: value})
        for path, dimension in request.space.items()
        for value in dimension.edges()
    ]
    paths = list(request.space)
    edges = [request.space[p].edges() for p in paths]
    for combination in itertools.islice(itertools.product(*edges), 256):
        probes.append((paths[-1], dict(zip(paths, combination, strict=True))))
    return probes
