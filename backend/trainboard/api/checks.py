"""The guide's sanity checks as runs of their own kind, queued like any run: the learning-rate
range test (`POST /lr-find`) and the overfit-one-batch preflight (`POST /preflight`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from trainboard.api.deps import DatabaseDep, SettingsDep
from trainboard.api.validation import check_spec_references
from trainboard.api.views import run_public
from trainboard.models import RunKind
from trainboard.schemas import LrFindRequest, PreflightRequest, RunPublic
from trainboard.store import runs as store
from trainboard.training.spec import RunSpec

router = APIRouter(tags=["insight"])
# A person waits for a check's answer: it goes before training runs up to 99 above its own.
CHECK_PRIORITY_BOOST = 100


def _queue_check(
    body: RunSpec, kind: RunKind, options: dict, db: DatabaseDep, settings: SettingsDep
) -> RunPublic:
    fields = body.model_dump(exclude={kind.value})
    spec = RunSpec.model_validate(fields)
    with db.read() as session:  # the checks only read: they take no write lock
        spec = check_spec_references(session, spec, settings, tag=None)
    priority = spec.priority + CHECK_PRIORITY_BOOST
    with db.write() as session:
        run = store.create_job_run(
            session, spec=spec, kind=kind, options=options, priority=priority
        )
    return run_public(run, settings)


@router.post("/lr-find", status_code=201)
def create_lr_find(
    body: Annotated[LrFindRequest, Body()], db: DatabaseDep, settings: SettingsDep
) -> RunPublic:
    """Queue a learning-rate range test of the spec; completed, its summary has
    `suggested_lr`, `suggestions` and the curve (`lr_find`: `lrs`, `losses`)."""
    options = body.lr_find.model_dump()
    return _queue_check(body, RunKind.lr_find, options, db, settings)


@router.post("/preflight", status_code=201)
def create_preflight(
    body: Annotated[PreflightRequest, Body()], db: DatabaseDep, settings: SettingsDep
) -> RunPublic:
    """Queue an overfit-one-batch check of the spec; completed, its summary's `preflight`
    has `passed`, `start_loss`, `end_loss`, `steps` and `message`."""
    options = body.preflight.model_dump()
    return _queue_check(body, RunKind.preflight, options, db, settings)
