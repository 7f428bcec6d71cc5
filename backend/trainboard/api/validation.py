"""Checks of a spec that need the catalog or the database: what it names must exist, and the run
it describes must be able to start. Nothing is trained or allocated here: the model is built on
the meta device (shapes only) for the facts the catalog states about the data set."""

from __future__ import annotations

import re
from typing import Any

import torch
from fastapi.exceptions import RequestValidationError
from sqlmodel import Session
from torch import nn

from trainboard.config import Settings
from trainboard.models import UploadedDataset
from trainboard.store.workers import list_workers
from trainboard.training.data import DATASETS, DataInfo
from trainboard.training.data.catalog import sequence_length
from trainboard.training.models import IncompatibleData, ModelTooLarge, check_model_size
from trainboard.training.optim import UnmatchedParamGroup, check_param_groups
from trainboard.training.spec import DatasetSpec, RunSpec

CUDA_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def spec_error(loc: list[str | int], message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ["body", *loc], "msg": message, "input": value}]
    )


def check_spec_references(session: Session, spec: RunSpec, settings: Settings) -> None:
    """422 naming the field when the spec names what does not exist or a run that could never
    start: a model that cannot take the data set or has too many parameters, a param group
    that matches no parameter, a loss that does not fit the task, a device no machine has."""
    info = catalog_data_info(session, spec.dataset)
    outline = _model_outline(spec, info, settings.max_model_parameters)
    try:
        check_param_groups(outline, spec.optimizer)  # the check the run makes, on the outline
    except UnmatchedParamGroup as exc:
        loc: list[str | int] = ["optimizer", "param_groups", exc.index, "match"]
        raise spec_error(loc, str(exc), exc.pattern) from None
    if spec.loss != "auto" and (spec.loss == "cross_entropy") != (info.task == "classification"):
        raise spec_error(
            ["loss"], f"loss {spec.loss!r} does not fit a {info.task} data set", spec.loss
        )
    check_device(session, spec.device)


def catalog_data_info(session: Session, dataset: DatasetSpec) -> DataInfo:
    """What a model is built for, from what the catalog says of the data set (no data is
    loaded). Where the catalog is silent, the common case: two classes, two token values."""
    facts = _dataset_facts(session, dataset)
    shape = tuple(facts.get("input_shape") or [1])
    modality = facts.get("modality") or ("image" if len(shape) == 3 else "tabular")
    return DataInfo(
        task=facts.get("task", "classification"),
        modality=modality,
        input_shape=shape,
        num_outputs=facts.get("num_classes") or 2,
        vocab_size=2 if modality == "tokens" else None,
    )


def _dataset_facts(session: Session, dataset: DatasetSpec) -> dict[str, Any]:
    name, params = dataset.name, dataset.params
    if name in DATASETS:
        try:
            params = DATASETS.validate_params(name, params)
        except ValueError as exc:
            raise spec_error(["dataset", "params"], str(exc), params) from None
        facts = dict(DATASETS.get(name).info)
        # The catalog states the default length; `sequences` takes another one as a param.
        if name == "sequences":
            facts["input_shape"] = [sequence_length(params)]
        return facts
    upload = session.get(UploadedDataset, name)
    if upload is None:
        known = sorted([p.name for p in DATASETS])
        raise spec_error(
            ["dataset", "name"],
            f"unknown dataset {name!r}; known: {', '.join(known)} or an uploaded one",
            name,
        )
    if params:
        raise spec_error(["dataset", "params"], "uploaded data sets take no params", params)
    return {"task": upload.task, "input_shape": [len(upload.columns)], "num_classes": None}


def _model_outline(spec: RunSpec, info: DataInfo, max_parameters: int) -> nn.Module:
    try:
        return check_model_size(spec.model, info, max_parameters=max_parameters)
    except ModelTooLarge as exc:
        raise spec_error(["model", "params"], str(exc), spec.model.params) from None
    except (IncompatibleData, ValueError) as exc:
        raise spec_error(["model", "name"], str(exc), spec.model.name) from None
    except (RuntimeError, NotImplementedError) as exc:
        # A plugin whose constructor reads tensor values cannot be built on the meta device,
        # and building it for real to find its size is what this check exists to avoid.
        message = f"model {spec.model.name!r} cannot be sized without building it: {exc}"
        raise spec_error(["model", "name"], message, spec.model.name) from None


def check_device(session: Session, device: str) -> None:
    """422 unless some machine could serve `device`.

    `auto` and `cpu` every machine serves. `cuda:N` (`cuda` is `cuda:0`) needs N+1 CUDA
    devices: on this server's machine, or on a worker's, as a worker registered in the
    database reports it (a worker on `cuda:K` has at least K+1; stopped workers count, since
    their machines usually come back). A remote worker's other devices are not known here,
    so `cuda:N` above every registered `cuda:K` is refused even where that machine has it."""
    match = CUDA_DEVICE.match(device)
    if match is None:
        return
    known = known_cuda_devices(session)
    if int(match.group(1) or 0) >= known:
        names = ", ".join(["cpu", *(f"cuda:{i}" for i in range(known))])
        raise spec_error(
            ["device"],
            f"no machine has device {device!r} (known devices: {names}); use auto, or start "
            f"`trainboard worker --device {device}` on a machine that has it",
            device,
        )


def known_cuda_devices(session: Session) -> int:
    """The most CUDA devices of one machine: this server's, or a registered worker's."""
    counts = [torch.cuda.device_count()]
    for worker in list_workers(session):
        if match := CUDA_DEVICE.match(worker.device):
            counts.append(int(match.group(1) or 0) + 1)
    return max(counts)
