"""Shared dependencies as Annotated aliases: settings, engine, session, the run of a path, auth."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy import Engine
from sqlmodel import Session

from trainboard.config import Settings
from trainboard.db import session_scope
from trainboard.models import Run
from trainboard.store.runs import get_run


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


# scope="function": the transaction ends (commits) when the handler returns, before the response
# is sent; a streamed or file response must never hold SQLite's write lock while it sends.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_path_run(run_id: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep) -> Run:
    return get_run(session, run_id=run_id)


RunDep = Annotated[Run, Depends(get_path_run)]


def require_token(request: Request, settings: SettingsDep) -> None:
    """With TRAINBOARD_TOKEN set, every /api route but health needs `Bearer <token>`."""
    if not settings.token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # EventSource cannot send headers, so the live-events stream also takes ?token=.
    given = given if scheme.lower() == "bearer" else request.query_params.get("token", "")
    if not secrets.compare_digest(given.encode(), settings.token.encode()):
        raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})
