"""Files a remote worker fetches before it trains a run: the checkpoint it resumes from and the
uploaded table it trains on, found by name in the database or the uploads folder (never by a
path a client sent). Under /api/remote, with the workers' token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import FileResponse

from trainboard.api.deps import DatabaseDep, SettingsDep
from trainboard.api.serving import file_response
from trainboard.serving.source import CheckpointRef, checkpoint_file
from trainboard.store.checkpoints import find_checkpoint
from trainboard.training.data.uploads import upload_paths

router = APIRouter(prefix="/remote", tags=["remote workers"])
RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/uploads/{name}/{part}")
def download_upload(
    name: Annotated[str, Path(max_length=64)],
    part: Annotated[str, Path(pattern=r"^(csv|json)$")],
    settings: SettingsDep,
) -> FileResponse:
    """An uploaded data set's CSV or facts, for a remote worker that trains on it."""
    try:
        table, facts = upload_paths(settings.uploads_dir, name)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    path = table if part == "csv" else facts
    if not path.is_file():
        raise HTTPException(404, f"no uploaded data set named {name!r}")
    return FileResponse(path)


@router.get("/runs/{run_id}/checkpoints/{name}")
def download_checkpoint(
    run_id: RunId,
    name: Annotated[str, Path(max_length=64)],
    db: DatabaseDep,
    settings: SettingsDep,
    request: Request,
) -> Response:
    """A checkpoint a resumed attempt starts from (found by its row, never by a path)."""
    with db.read() as session:
        row = find_checkpoint(session, run_id=run_id, checkpoint_id=name)
    path = checkpoint_file(settings, run_id=run_id, name=row.name)
    return file_response(CheckpointRef(run_id, row.name, row.sha256, path), request)
