"""Checkpoints: list, download by id from the database (never by a client path), upload."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from trainboard.api.deps import DatabaseDep, RunDep, SettingsDep
from trainboard.api.serving import file_response
from trainboard.api.upload_check import require_weights_only
from trainboard.api.views import checkpoint_public
from trainboard.models import Run
from trainboard.schemas import CheckpointPublic
from trainboard.serving.source import CheckpointRef, checkpoint_file
from trainboard.store.checkpoints import find_checkpoint, list_checkpoints, sync_checkpoints
from trainboard.store.errors import Conflict, raise_if_disk_full
from trainboard.store.files import folder_bytes
from trainboard.store.metrics import require_writable
from trainboard.store.runs import set_disk_bytes
from trainboard.training.checkpoint import CheckpointEntry, atomic_write, checkpoint_name

router = APIRouter(prefix="/runs/{run_id}/checkpoints", tags=["checkpoints"])


@router.get("")
def list_run_checkpoints(run: RunDep, db: DatabaseDep) -> list[CheckpointPublic]:
    with db.read() as session:
        return [checkpoint_public(row) for row in list_checkpoints(session, run_id=run.id)]


@router.get("/{checkpoint_id}", response_class=FileResponse)
def download_checkpoint(
    run: RunDep,
    checkpoint_id: Annotated[str, PathParam(max_length=64)],
    db: DatabaseDep,
    settings: SettingsDep,
    request: Request,
) -> Response:
    with db.read() as session:
        row = find_checkpoint(session, run_id=run.id, checkpoint_id=checkpoint_id)
    # The file name comes from the database row, and is checked once more before use.
    path = checkpoint_file(settings, run_id=run.id, name=row.name)
    return file_response(CheckpointRef(run.id, row.name, row.sha256, path), request)


@router.post("", status_code=201)
def upload_checkpoint(
    run: RunDep,
    db: DatabaseDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    epoch: Annotated[int, Form(ge=0, le=10_000_000)] = 0,
) -> CheckpointPublic:
    """A checkpoint of an external run's own; an existing one is never replaced (409)."""
    require_writable(run, run.id, what="checkpoints")
    # A sync handler: reading, hashing and writing up to max_upload_bytes happen on a worker
    # thread, never on the event loop.
    content = file.file.read(settings.max_upload_bytes + 1)
    if len(content) > settings.max_upload_bytes:
        raise HTTPException(413, f"checkpoint larger than {settings.max_upload_bytes} bytes")
    # 422 before anything is stored; unpacked, a zip may hold 4 times the upload limit.
    require_weights_only(content, max_unpacked=4 * settings.max_upload_bytes)
    name = checkpoint_name(epoch)
    path = settings.run_dir(run.id) / "checkpoints" / f"{name}.pt"
    try:
        atomic_write(path, lambda tmp: tmp.write_bytes(content), overwrite=False)
    except FileExistsError:
        raise Conflict(
            f"run {run.id} already has checkpoint {name!r}; log it under another epoch"
        ) from None
    except OSError as exc:
        raise_if_disk_full(exc, f"checkpoint {name!r}")
        raise
    entry = CheckpointEntry(
        name,
        epoch,
        len(content),
        hashlib.sha256(content).hexdigest(),
        {},
        created_at=path.stat().st_mtime,
    )
    disk_bytes = folder_bytes(settings.run_dir(run.id))  # walked before the write lock is taken
    try:
        with db.write() as session:
            require_writable(session.get(Run, run.id), run.id, what="checkpoints")
            sync_checkpoints(session, run_id=run.id, attempt=None, entries=[entry])
            set_disk_bytes(session, run_id=run.id, disk_bytes=disk_bytes)
            row = find_checkpoint(session, run_id=run.id, checkpoint_id=name)
    except BaseException:
        path.unlink(missing_ok=True)  # the file is ours (it did not exist): no row, no file
        raise
    return checkpoint_public(row)
