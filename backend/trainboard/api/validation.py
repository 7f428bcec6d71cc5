"""Checks of a spec that need the database: what it names must exist (uploads are rows here),
and the run it describes must be able to start on some machine. What a spec needs of the
registries and the data is `training.runnable`'s answer; this module turns it into a 422."""

from __future__ import annotations

import re
from typing import Any

import torch
from fastapi.exceptions import RequestValidationError
from sqlmodel import Session

from trainboard.config import Settings
from trainboard.store.workers import list_workers, upload_data_info
from trainboard.training.runnable import SpecProblem, check_runnable, dataset_info, validate_names
from trainboard.training.spec import RunSpec

CUDA_DEVICE = re.compile(r"^cuda(?::(\d+))?$")


def spec_error(loc: list[str | int], message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ["body", *loc], "msg": message, "input": value}]
    )


def check_spec_references(
    session: Session, spec: RunSpec, settings: Settings, *, tag: str | None = "job"
) -> RunSpec:
    """`spec` with its plugins' params completed (see `validate_names`: what to store), or a
    422 naming the field when the spec names what does not exist or a run that could never
    start: a model that cannot take the data set or has too many parameters, a param group
    that matches no parameter, a loss that does not fit the task, a device no machine has."""
    try:
        spec = validate_names(spec)
    except SpecProblem as problem:
        # Located where the body's own validation puts its errors: under the run kind's tag
        # (`tag`) where the body is one of several kinds.
        loc = [tag, *problem.loc] if tag else list(problem.loc)
        raise spec_error(loc, problem.message, problem.value) from None
    try:
        upload = upload_data_info(session, name=spec.dataset.name)
        info = dataset_info(spec.dataset, upload=upload)
        check_runnable(spec, info, max_parameters=settings.max_model_parameters)
    except SpecProblem as problem:
        raise spec_error(list(problem.loc), problem.message, problem.value) from None
    check_device(session, spec.device)
    return spec


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
