"""Is a spec runnable? What it names checked against the registries and the data set catalog,
and its model against what the data will be: one answer, a SpecProblem naming the field.

Nothing is trained, loaded or allocated here: the data set is described from its params, and
the model is built on the meta device (names and shapes only) to be counted and matched."""

from __future__ import annotations

import re
from typing import Any

from trainboard.training.data.catalog import DATASETS, describe
from trainboard.training.data.types import DataInfo
from trainboard.training.models import (
    MODELS,
    IncompatibleData,
    ModelTooLarge,
    check_model_size,
    loss_name,
)
from trainboard.training.optim import (
    OPTIMIZERS,
    SCHEDULERS,
    UnmatchedParamGroup,
    check_param_groups,
    check_warmup,
)
from trainboard.training.registry import Registry
from trainboard.training.spec import DatasetSpec, RunSpec

Loc = tuple[str | int, ...]
CUDA_INDEXED = re.compile(r"^cuda:\d+$")


class SpecProblem(ValueError):
    """Why a spec cannot run: the field at `loc` (``("model", "name")``), what is wrong with
    it, and the value it holds."""

    def __init__(self, loc: Loc, message: str, value: Any = None) -> None:
        super().__init__(f"{'.'.join(str(part) for part in loc)}: {message}")
        self.loc, self.message, self.value = loc, message, value


def _options(registry: Registry, field: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        registry.get(name)
    except ValueError as exc:
        raise SpecProblem((field, "name"), str(exc), name) from None
    try:
        return registry.validate_params(name, params)
    except ValueError as exc:
        raise SpecProblem((field, "params"), str(exc), params) from None


def validate_names(spec: RunSpec) -> RunSpec:
    """`spec` with the params of the model, optimizer and scheduler it names validated against
    their registries and completed with their defaults, as the run will use them; SpecProblem
    for an unknown name, bad params or a warmup its scheduler cannot follow. Needs no data."""
    model = _options(MODELS, "model", spec.model.name, spec.model.params)
    optimizer = _options(OPTIMIZERS, "optimizer", spec.optimizer.name, spec.optimizer.params)
    scheduler = _options(SCHEDULERS, "scheduler", spec.scheduler.name, spec.scheduler.params)
    try:
        check_warmup(spec.scheduler)
    except ValueError as exc:
        loc = ("scheduler", "warmup_epochs")
        raise SpecProblem(loc, str(exc), spec.scheduler.warmup_epochs) from None
    return spec.model_copy(
        update={
            "model": spec.model.model_copy(update={"params": model}),
            "optimizer": spec.optimizer.model_copy(update={"params": optimizer}),
            "scheduler": spec.scheduler.model_copy(update={"params": scheduler}),
        }
    )


def dataset_info(dataset: DatasetSpec, *, upload: DataInfo | None = None) -> DataInfo | None:
    """What the data set `dataset` names will be, without loading it: a registered one as its
    catalog entry describes it for these params, else the upload of that name, whose facts the
    caller has (`upload`: see `data.uploads.upload_info`). SpecProblem for an unknown name or
    bad params; None for a plugin that states nothing of its data (its run finds out)."""
    name, params = dataset.name, dataset.params
    if name in DATASETS:
        try:
            return describe(name, params)
        except ValueError as exc:
            raise SpecProblem(("dataset", "params"), str(exc), params) from None
    if upload is None:
        known = ", ".join(sorted(plugin.name for plugin in DATASETS))
        message = f"unknown dataset {name!r}; known: {known} or an uploaded one"
        raise SpecProblem(("dataset", "name"), message, name)
    if params:
        raise SpecProblem(("dataset", "params"), "uploaded data sets take no params", params)
    return upload


def check_runnable(spec: RunSpec, info: DataInfo | None, *, max_parameters: int) -> RunSpec:
    """SpecProblem naming the field when `spec` could never run on data described by `info`
    (see `dataset_info`; None where that is not known, and then only the names are checked):
    an unknown name or bad params (`validate_names`), a model that cannot take the data or has
    more than `max_parameters` parameters, a param group that matches no parameter, a loss
    that does not fit the task, a batch too small to give each of its devices two samples.
    Returns `spec` as `validate_names` completes it."""
    spec = validate_names(spec)
    if spec.devices > 1 and spec.batch_size < 2 * spec.devices:
        message = (
            f"batch_size must be at least twice devices ({spec.devices}): each device trains "
            "on its part of every batch, and BatchNorm needs two samples"
        )
        raise SpecProblem(("batch_size",), message, spec.batch_size)
    if spec.devices > 1 and CUDA_INDEXED.match(spec.device):
        message = "a run on several devices takes device auto, cpu or cuda (GPUs 0 to devices-1)"
        raise SpecProblem(("device",), message, spec.device)
    if info is None:
        return spec
    try:
        outline = check_model_size(spec.model, info, max_parameters=max_parameters)
    except ModelTooLarge as exc:
        raise SpecProblem(("model", "params"), str(exc), spec.model.params) from None
    except (IncompatibleData, ValueError) as exc:
        raise SpecProblem(("model", "name"), str(exc), spec.model.name) from None
    except (RuntimeError, NotImplementedError) as exc:
        # A plugin whose constructor reads tensor values cannot be built on the meta device,
        # and building it for real to find its size is what this check exists to avoid.
        message = f"model {spec.model.name!r} cannot be sized without building it: {exc}"
        raise SpecProblem(("model", "name"), message, spec.model.name) from None
    try:
        check_param_groups(outline, spec.optimizer)  # the check the run makes, on the outline
    except UnmatchedParamGroup as exc:
        loc = ("optimizer", "param_groups", exc.index, "match")
        raise SpecProblem(loc, exc.reason, exc.pattern) from None
    try:
        loss_name(info.task, spec.loss)
    except IncompatibleData as exc:
        raise SpecProblem(("loss",), str(exc), spec.loss) from None
    return spec
