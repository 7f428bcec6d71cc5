"""Shared dependencies as Annotated aliases: settings, engine, session, the run of a path, auth."""

from __future__ import annotations

import secrets
from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy import Engine
from sqlmodel import Session

from trainboard.api.live import LiveEvents
from trainboard.api.pointwriter import PointWriter
from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.models import Run
from trainboard.store.runs import get_run


# Dependencies that only read app state are async: a sync one would cost each request a hop
# to the thread pool, which a burst of requests queues for.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_live(request: Request) -> LiveEvents:
    return request.app.state.live


async def get_point_writer(request: Request) -> PointWriter:
    return request.app.state.point_writer


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
LiveDep = Annotated[LiveEvents, Depends(get_live)]
PointWriterDep = Annotated[PointWriter, Depends(get_point_writer)]


class Database:
    """Short sessions a handler opens and closes itself: `with db.read() as session:` or
    `with db.write() as session:` around one store call.

    A session is opened, used and closed on the handler's own thread, so no request holds a
    connection or SQLite's write lock while it waits for a thread (a burst of requests would
    otherwise fill the thread pool with waiters for what a queued request holds). Reads never
    take the write lock: WAL readers see a snapshot and wait for nobody."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self) -> AbstractContextManager[Session]:
        return session_scope(reader(self.engine))

    def write(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)


async def get_database(engine: EngineDep) -> Database:
    return Database(engine)


DatabaseDep = Annotated[Database, Depends(get_database)]


RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def get_path_run(run_id: RunId, engine: EngineDep) -> Run:
    """The run of the path, or 404; read in a session of its own that ends at once."""
    with session_scope(reader(engine)) as session:
        return get_run(session, run_id=run_id)


RunDep = Annotated[Run, Depends(get_path_run)]


async def require_worker_token(request: Request, settings: SettingsDep) -> None:
    """The remote workers' routes: `Bearer <token>` with TRAINBOARD_TOKEN or, a scope of its
    own, TRAINBOARD_WORKER_TOKEN (which opens nothing else); open when neither is set."""
    tokens = [t for t in (settings.token, settings.worker_token) if t]
    if not tokens:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    matches = [secrets.compare_digest(given.encode(), t.encode()) for t in tokens]
    if scheme.lower() != "bearer" or not any(matches):
        raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})


async def require_token(request: Request, settings: SettingsDep) -> None:
    """With TRAINBOARD_TOKEN set, every /api route but health needs `Bearer <token>`; reads (GET,
    HEAD) may carry it as `?token=` instead."""
    if not settings.token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        # EventSource and download links cannot send headers, so reads also take ?token=. Writes
        # never need to, and a URL ends up in logs, history and Referer headers.
        reading = request.method in ("GET", "HEAD")
        given = request.query_params.get("token", "") if reading else ""
    if not secrets.compare_digest(given.encode(), settings.token.encode()):
        raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})
