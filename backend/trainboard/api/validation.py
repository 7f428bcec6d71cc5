"""Checks of a spec that need the catalog or the database: the names it refers to must exist."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from sqlmodel import Session

from trainboard.config import Settings
from trainboard.models import UploadedDataset
from trainboard.training.data import DATASETS, DataInfo
from trainboard.training.data.catalog import sequence_length
from trainboard.training.models import IncompatibleData, build_model
from trainboard.training.spec import RunSpec


def spec_error(loc: list[str | int], message: str, value: Any = None) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ["body", *loc], "msg": message, "input": value}]
    )


def dataset_facts(session: Session, name: str, params: dict[str, Any]) -> dict[str, Any]:
    if name in DATASETS:
        plugin = DATASETS.get(name)
        try:
            params = DATASETS.validate_params(name, params)
        except ValueError as exc:
            raise spec_error(["dataset", "params"], str(exc), params) from None
        facts = dict(plugin.info)
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


def check_spec_references(session: Session, spec: RunSpec, settings: Settings) -> None:
    """422 naming the field when the spec's data set is unknown or its model cannot take it."""
    facts = dataset_facts(session, spec.dataset.name, spec.dataset.params)
    shape = tuple(facts.get("input_shape") or [1])
    modality = facts.get("modality") or ("image" if len(shape) == 3 else "tabular")
    info = DataInfo(
        task=facts.get("task", "classification"),
        modality=modality,
        input_shape=shape,
        num_outputs=facts.get("num_classes") or 2,
        vocab_size=2 if modality == "tokens" else None,
    )
    try:
        build_model(spec.model, info)
    except (IncompatibleData, ValueError) as exc:
        raise spec_error(["model", "name"], str(exc), spec.model.name) from None
    if spec.loss != "auto" and (spec.loss == "cross_entropy") != (info.task == "classification"):
        raise spec_error(
            ["loss"], f"loss {spec.loss!r} does not fit a {info.task} data set", spec.loss
        )
