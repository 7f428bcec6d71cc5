"""Checkpoints as models: export in a format, predictions on raw rows, the leaderboard.

Exports and predictions are CPU work (an ONNX export takes seconds): the handlers are sync, so
they run on the thread pool, off the event loop, and each reads the checkpoint's row in a short
session of its own that is closed before any model is loaded or exported."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from trainboard.api.deps import DatabaseDep, RunDep, SettingsDep
from trainboard.config import Settings
from trainboard.serving.cache import LRU, exported, model_cache
from trainboard.serving.export import SUFFIXES, Format
from trainboard.serving.inputs import InputProblem
from trainboard.serving.predict import predict_rows
from trainboard.serving.schemas import CHECKPOINT_ID, Prediction, PredictRequest, RankedCheckpoint
from trainboard.serving.source import CheckpointRef, Loaded, checkpoint_ref, load, phrase
from trainboard.store.errors import raise_if_disk_full
from trainboard.store.leaderboard import best_checkpoints


async def one_thread_each(request: Request) -> None:
    """Torch in the server process runs each prediction and export on one thread. Requests
    already run side by side on the thread pool, and the cores are shared with the workers'
    training: there, a second intra-op thread spins against them (a 256-row predict of a
    digits MLP on a busy 2-core machine: 15 ms with two threads, 0.2 ms with one)."""
    state = request.app.state
    if not getattr(state, "torch_one_thread", False):
        import torch

        torch.set_num_threads(1)
        state.torch_one_thread = True


router = APIRouter(tags=["serving"], dependencies=[Depends(one_thread_each)])

CheckpointIdParam = Annotated[str, PathParam(max_length=64, pattern=CHECKPOINT_ID)]
FormatQuery = Annotated[Format, Query(alias="format", description="onnx | torchscript | pt2")]
METRIC = r"^[A-Za-z0-9_][A-Za-z0-9_./\-]{0,199}$"


async def get_models(request: Request) -> LRU[str, Loaded]:
    """The server's loaded models, made on first use (async: no thread, no race)."""
    state = request.app.state
    if not hasattr(state, "models"):
        state.models = model_cache(state.settings.predict_cache_models)
    return state.models


ModelsDep = Annotated[LRU[str, Loaded], Depends(get_models)]


def export_response(
    ref: CheckpointRef, fmt: Format, settings: Settings, request: Request
) -> Response:
    """The verified export of `ref` as a download; 422 saying why there is none."""
    etag = f'"{ref.sha256}-{fmt}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    try:
        result = exported(settings, ref, fmt)
    except OSError as exc:
        raise_if_disk_full(exc, f"the {fmt} export")
        raise
    except ValueError as exc:  # ExportProblem, or a checkpoint whose model cannot be rebuilt
        raise HTTPException(
            422, f"checkpoint {ref.name} of run {ref.run_id} cannot be exported: {exc}"
        ) from None
    return FileResponse(
        result.path,
        media_type="application/octet-stream",
        filename=f"run-{ref.run_id}-{ref.name}{SUFFIXES[fmt]}",
        headers={
            "ETag": etag,
            "X-Trainboard-Cache": "hit" if result.cached else "miss",
            "X-Trainboard-Verified-Rows": str(result.rows),
            "X-Trainboard-Max-Difference": f"{result.max_difference:.3g}",
        },
    )


def predict_response(
    ref: CheckpointRef, inputs: list, settings: Settings, models: LRU[str, Loaded]
) -> Prediction:
    """Predictions of `ref`'s model for raw rows; 422 naming what is wrong with them."""
    try:
        loaded = models.get(ref.sha256, lambda: load(ref, settings))
    except ValueError as exc:
        raise HTTPException(
            422, f"checkpoint {ref.name} of run {ref.run_id} cannot predict: {exc}"
        ) from None
    try:
        answer = predict_rows(loaded.model, inputs, max_rows=settings.predict_max_rows)
    except InputProblem as problem:
        raise HTTPException(422, str(problem)) from None
    except Exception as exc:  # a plugin's forward, or preprocessing, that fails on the rows
        raise HTTPException(
            422, f"checkpoint {ref.name} of run {ref.run_id} fails on these rows: {phrase(exc)}"
        ) from None
    return Prediction(**answer, run_id=ref.run_id, checkpoint=ref.name)


def file_response(ref: CheckpointRef, request: Request) -> Response:
    """The checkpoint file itself, with its sha256 as ETag: the one download of a checkpoint
    file, whether by run (the checkpoints router) or by alias."""
    etag = f'"{ref.sha256}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return FileResponse(
        ref.path,
        media_type="application/octet-stream",
        filename=f"run-{ref.run_id}-{ref.name}.pt",
        headers={"ETag": etag},
    )


@router.get("/runs/{run_id}/checkpoints/{checkpoint_id}/export", response_class=FileResponse)
def export_checkpoint(
    run: RunDep,
    checkpoint_id: CheckpointIdParam,
    fmt: FormatQuery,
    db: DatabaseDep,
    settings: SettingsDep,
    request: Request,
) -> Response:
    with db.read() as session:
        ref = checkpoint_ref(session, settings, run_id=run.id, checkpoint_id=checkpoint_id)
    return export_response(ref, fmt, settings, request)


@router.post("/runs/{run_id}/predict")
def predict(
    run: RunDep, body: PredictRequest, db: DatabaseDep, settings: SettingsDep, models: ModelsDep
) -> Prediction:
    with db.read() as session:
        ref = checkpoint_ref(session, settings, run_id=run.id, checkpoint_id=body.checkpoint)
    return predict_response(ref, body.inputs, settings, models)


@router.get("/checkpoints")
def leaderboard(
    db: DatabaseDep,
    order_by: Annotated[str, Query(pattern=METRIC)] = "val_loss",
    mode: Literal["min", "max"] = "min",
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    per_run: bool = True,
) -> list[RankedCheckpoint]:
    """The best checkpoints across runs by `order_by` (each run's best only, unless
    `per_run=false`)."""
    with db.read() as session:
        rows = best_checkpoints(session, metric=order_by, mode=mode, limit=limit, per_run=per_run)
    return [
        RankedCheckpoint(
            run_id=run.id or 0,
            run_name=run.name,
            run_status=run.status,
            dataset=_named(run.spec, "dataset"),
            model=_named(run.spec, "model"),
            id=row.name,
            epoch=row.epoch,
            value=value,
            metrics=row.metrics,
            is_best=row.is_best,
            sha256=row.sha256,
            created_at=row.created_at,
        )
        for row, run, value in rows
    ]


def _named(spec: dict, key: str) -> str:
    """The name of the spec's data set or model; empty for an external run's spec."""
    part = spec.get(key)
    return str(part.get("name", "")) if isinstance(part, dict) else ""
