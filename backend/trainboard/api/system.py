"""Health, catalog, uploaded data sets and workers."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from sqlmodel import Session

from trainboard import __version__
from trainboard.api.deps import DatabaseDep, LiveDep, SettingsDep
from trainboard.models import UploadedDataset, utcnow
from trainboard.schemas import DatasetPublic, Health, WorkerPublic
from trainboard.store.files import StagedFiles
from trainboard.store.workers import add_upload, count_live_workers, list_uploads, list_workers
from trainboard.training.data import DATASETS, dataset_catalog
from trainboard.training.data.tables import TableError, check_target, infer_task, read_csv
from trainboard.training.data.uploads import upload_paths
from trainboard.training.models import MODELS
from trainboard.training.optim import OPTIMIZERS, SCHEDULERS
from trainboard.training.runnable import validate_names
from trainboard.training.spec import RunSpec, default_spec

public = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])

UPLOAD_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def live_worker_count(session: Session, lease_seconds: float) -> int:
    fresh = utcnow() - timedelta(seconds=max(10.0, 3 * lease_seconds))
    return count_live_workers(session, seen_since=fresh)


@public.get("/health")
def health(db: DatabaseDep, settings: SettingsDep, live: LiveDep) -> Health:
    with db.read() as session:
        workers = live_worker_count(session, settings.lease_seconds)
    return Health(status="ok", version=__version__, workers=workers, streams=live.streams)


@router.get("/catalog")
def catalog(db: DatabaseDep) -> dict:
    with db.read() as session:
        uploaded = list_uploads(session)
    uploads = [
        {
            "name": u.name,
            "task": u.task,
            "input_shape": [len(u.columns)],
            "num_classes": None,
            "description": f"uploaded CSV: {u.rows} rows, target {u.target!r}",
            "params": {"type": "object", "properties": {}},
            "modality": "tabular",
            "uploaded": True,
        }
        for u in uploaded
    ]
    return {
        "datasets": dataset_catalog(uploads),
        "models": MODELS.catalog(),
        "optimizers": OPTIMIZERS.catalog(),
        "schedulers": SCHEDULERS.catalog(),
        "defaults": validate_names(RunSpec.model_validate(default_spec())).model_dump(),
    }


@router.post("/datasets", status_code=201)
def upload_dataset(
    db: DatabaseDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    target: Annotated[str, Form(min_length=1, max_length=200)],
    name: Annotated[str | None, Form(max_length=64)] = None,
    task: Annotated[str | None, Form(pattern="^(classification|regression)$")] = None,
) -> DatasetPublic:
    # A sync handler: parsing a large CSV runs on a worker thread, never on the event loop.
    content = file.file.read(settings.max_upload_bytes + 1)
    if len(content) > settings.max_upload_bytes:
        raise HTTPException(413, f"the file is larger than {settings.max_upload_bytes} bytes")
    stem = (file.filename or "dataset").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    name = name or re.sub(r"[^A-Za-z0-9_\-]+", "-", stem).strip("-")[:64] or "dataset"
    if not UPLOAD_NAME.match(name):
        raise _unprocessable("name", "use 1-64 letters, digits, '-' or '_'", name)
    if name in DATASETS:
        raise HTTPException(409, f"{name!r} is a built-in data set; choose another name")
    try:
        table = read_csv(content, max_columns=settings.max_upload_columns)
        if target not in table.data:
            raise TableError(
                f"there is no column named {target!r}; columns are: {', '.join(table.columns)}"
            )
        task = task or infer_task(table.data[target])
        check_target(table, target, task)
    except TableError as exc:
        raise _unprocessable("file", str(exc), file.filename) from None
    dataset = UploadedDataset(
        name=name,
        task=task,
        rows=table.rows,
        columns=[c for c in table.columns if c != target],
        target=target,
        size_bytes=len(content),
    )
    meta = json.dumps({"target": target, "task": task}).encode()
    with StagedFiles(settings.uploads_dir, f"data set {name!r}") as staged:
        csv_path, meta_path = upload_paths(settings.uploads_dir, name)
        staged.add(csv_path, content)
        staged.add(meta_path, meta)
        with db.write() as session:
            row = add_upload(session, dataset=dataset)  # Conflict for a name taken
            staged.publish()  # inside the transaction: two uploads of one name never interleave
    return DatasetPublic(
        name=row.name, task=row.task, rows=row.rows, columns=row.columns, target=row.target
    )


def _unprocessable(field: str, message: str, value: object) -> HTTPException:
    return HTTPException(
        422, [{"type": "value_error", "loc": ["body", field], "msg": message, "input": value}]
    )


@router.get("/workers")
def workers(db: DatabaseDep) -> list[WorkerPublic]:
    with db.read() as session:
        return [WorkerPublic.model_validate(w.model_dump()) for w in list_workers(session)]
