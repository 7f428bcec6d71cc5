"""Model aliases: a name ("production") that points at a checkpoint and is moved by PUT; its
download, export and predict resolve it, so a deployment follows the name, not ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy.exc import IntegrityError

from trainboard.api.deps import DatabaseDep, SettingsDep
from trainboard.api.serving import (
    FormatQuery,
    ModelsDep,
    export_response,
    file_response,
    one_thread_each,
    predict_response,
)
from trainboard.models import ModelAlias
from trainboard.serving.schemas import (
    ALIAS_NAME,
    AliasPredictRequest,
    AliasPublic,
    AliasUpdate,
    Prediction,
)
from trainboard.serving.source import CheckpointRef, checkpoint_ref
from trainboard.store.aliases import delete_alias, get_alias, list_aliases, set_alias

router = APIRouter(prefix="/aliases", tags=["aliases"], dependencies=[Depends(one_thread_each)])

AliasName = Annotated[str, PathParam(pattern=ALIAS_NAME)]


def alias_public(alias: ModelAlias) -> AliasPublic:
    """An alias as the API shows it (its checkpoint by id, as the checkpoint routes take it)."""
    return AliasPublic(
        name=alias.name,
        run_id=alias.run_id,
        checkpoint_id=alias.checkpoint_name,
        updated_at=alias.updated_at,
    )


def _resolve(db: DatabaseDep, settings: SettingsDep, name: str) -> CheckpointRef:
    """The checkpoint alias `name` points at now; NotFound for no alias or no file."""
    with db.read() as session:
        alias = get_alias(session, name=name)
        return checkpoint_ref(
            session, settings, run_id=alias.run_id, checkpoint_id=alias.checkpoint_name
        )


@router.get("")
def list_all(db: DatabaseDep) -> list[AliasPublic]:
    """Every alias, by name."""
    with db.read() as session:
        return [alias_public(a) for a in list_aliases(session)]


@router.put("/{name}")
def put_alias(name: AliasName, body: AliasUpdate, db: DatabaseDep) -> AliasPublic:
    """Point `name` at a checkpoint (created, or moved from where it pointed)."""
    try:
        return _set(db, name, body)
    except IntegrityError:
        # Two first PUTs of one name at once (PostgreSQL): the loser's insert hit the
        # winner's row, which its second try finds and moves.
        return _set(db, name, body)


def _set(db: DatabaseDep, name: str, body: AliasUpdate) -> AliasPublic:
    """One transaction that points `name` at the checkpoint `body` names."""
    with db.write() as session:
        alias = set_alias(session, name=name, run_id=body.run_id, checkpoint_id=body.checkpoint_id)
        return alias_public(alias)


@router.get("/{name}")
def read_alias(name: AliasName, db: DatabaseDep) -> AliasPublic:
    """Where alias `name` points; 404 for no such alias."""
    with db.read() as session:
        return alias_public(get_alias(session, name=name))


@router.delete("/{name}", status_code=204)
def remove_alias(name: AliasName, db: DatabaseDep) -> Response:
    """Delete alias `name` (its checkpoint stays); 404 for no such alias."""
    with db.write() as session:
        delete_alias(session, name=name)
    return Response(status_code=204)


@router.get("/{name}/download", response_class=FileResponse)
def download(name: AliasName, db: DatabaseDep, settings: SettingsDep, request: Request) -> Response:
    """The checkpoint file alias `name` points at, as its run's checkpoint route serves it."""
    return file_response(_resolve(db, settings, name), request)


@router.get("/{name}/export", response_class=FileResponse)
def export(
    name: AliasName, fmt: FormatQuery, db: DatabaseDep, settings: SettingsDep, request: Request
) -> Response:
    """The verified export of the checkpoint alias `name` points at; 422 saying why none."""
    return export_response(_resolve(db, settings, name), fmt, settings, request)


@router.post("/{name}/predict")
def predict(
    name: AliasName,
    body: AliasPredictRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    models: ModelsDep,
) -> Prediction:
    """Predictions of the model alias `name` points at, for raw rows; 422 naming bad rows."""
    return predict_response(_resolve(db, settings, name), body.inputs, settings, models)
