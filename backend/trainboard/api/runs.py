"""Runs: create (job or external), list, read, edit, cancel, resume, finish, delete, logs."""

from __future__ import annotations

import shutil
import time
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import PlainTextResponse

from trainboard.api.deps import DatabaseDep, RunDep, SettingsDep
from trainboard.api.validation import check_spec_references
from trainboard.api.views import NOT_ASKED, offered_devices, run_public
from trainboard.jsonsafe import NoNul
from trainboard.models import RunStatus
from trainboard.schemas import (
    ExternalRunCreate,
    FinishRequest,
    ResumeRequest,
    RunCreate,
    RunList,
    RunPublic,
    RunUpdate,
)
from trainboard.store import runs as store
from trainboard.store.external import reopen_silent_run

router = APIRouter(prefix="/runs", tags=["runs"])

MAX_LOG_CHUNK = 1 << 20


@router.post("", status_code=201)
def create_run(
    body: Annotated[RunCreate, Body()], db: DatabaseDep, settings: SettingsDep
) -> RunPublic:
    if isinstance(body, ExternalRunCreate):
        with db.write() as session:
            run = store.create_external_run(session, request=body)
    else:
        with db.read() as session:  # the checks only read: they take no write lock
            body = check_spec_references(session, body, settings)
        with db.write() as session:
            run = store.create_job_run(session, spec=body)
    return run_public(run, settings)


@router.get("")
def list_runs(
    db: DatabaseDep,
    settings: SettingsDep,
    status: Annotated[str | None, Query(max_length=200, pattern=r"^[a-z,]*$")] = None,
    tag: Annotated[str | None, Query(max_length=64), NoNul()] = None,
    q: Annotated[str | None, Query(max_length=200), NoNul()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> RunList:
    with db.read() as session:
        rows, total = store.list_runs(
            session, status=status, tag=tag, q=q, limit=limit, offset=offset
        )
        queued = any(r.status == RunStatus.queued for r in rows)
        offered = offered_devices(session) if queued else NOT_ASKED
    return RunList(items=[run_public(r, settings, offered) for r in rows], total=total)


@router.get("/{run_id}")
def read_run(run: RunDep, db: DatabaseDep, settings: SettingsDep) -> RunPublic:
    if run.status != RunStatus.queued:
        return run_public(run, settings)
    with db.read() as session:
        offered = offered_devices(session)
    return run_public(run, settings, offered)


@router.patch("/{run_id}")
def update_run(
    run: RunDep, changes: RunUpdate, db: DatabaseDep, settings: SettingsDep
) -> RunPublic:
    with db.write() as session:
        run = store.update_run(session, run_id=run.id, changes=changes)
    return run_public(run, settings)


@router.post("/{run_id}/cancel", status_code=202)
def cancel_run(run: RunDep, db: DatabaseDep, settings: SettingsDep) -> RunPublic:
    with db.write() as session:
        run = store.cancel_run(session, run_id=run.id)
    return run_public(run, settings)


@router.post("/{run_id}/resume", status_code=202)
def resume_run(
    run: RunDep,
    db: DatabaseDep,
    settings: SettingsDep,
    body: Annotated[ResumeRequest | None, Body()] = None,
) -> RunPublic:
    with db.write() as session:
        run = store.resume_run(session, run_id=run.id, epochs=body.epochs if body else None)
    return run_public(run, settings)


@router.post("/{run_id}/finish")
def finish_run(
    run: RunDep, body: FinishRequest, db: DatabaseDep, settings: SettingsDep
) -> RunPublic:
    with db.write() as session:
        # A script the keeper took for dead (it was paused) may still end its run itself.
        reopen_silent_run(session, run_id=run.id, deadline=time.time() + settings.external_timeout)
        run = store.finish_external_run(
            session,
            run_id=run.id,
            status=body.status,
            error=body.error,
            params=body.params,
            summary=body.summary,
        )
    return run_public(run, settings)


@router.delete("/{run_id}", status_code=204)
def delete_run(run: RunDep, db: DatabaseDep, settings: SettingsDep) -> Response:
    with db.write() as session:
        store.delete_run(session, run_id=run.id)
    shutil.rmtree(settings.run_dir(run.id), ignore_errors=True)
    return Response(status_code=204)


@router.get("/{run_id}/logs", response_class=PlainTextResponse)
def read_logs(
    run: RunDep, settings: SettingsDep, offset: Annotated[int, Query(ge=0, le=2**50)] = 0
) -> PlainTextResponse:
    path = settings.run_dir(run.id) / "run.log"  # the only log file; no client path involved
    if not path.exists():
        return PlainTextResponse("", headers={"X-Log-Size": "0"})
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(min(offset, size))
        chunk = handle.read(MAX_LOG_CHUNK)
    return PlainTextResponse(
        chunk.decode("utf-8", errors="replace"),
        headers={"X-Log-Size": str(size), "X-Next-Offset": str(min(offset, size) + len(chunk))},
    )
