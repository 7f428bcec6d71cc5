"""create_app(settings) -> FastAPI: routers, middleware, static page; the lifespan owns the
database engine and the embedded worker processes."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from trainboard import __version__
from trainboard.admission import ReadTurns, WritesFirst
from trainboard.api import (
    aliases,
    checkpoints,
    checks,
    events,
    live,
    metrics,
    remote,
    remotefiles,
    runlog,
    runs,
    serving,
    sweeps,
    system,
)
from trainboard.api.deps import require_token, require_worker_token
from trainboard.api.live import LiveEvents
from trainboard.api.origin import SameOriginWrites
from trainboard.api.pointwriter import PointWriter
from trainboard.config import LOOPBACK_HOSTS, Settings
from trainboard.db import init_db, make_engine
from trainboard.external_keeper import keep_external_runs
from trainboard.limits import BodySizeLimit
from trainboard.pagefiles import PageFiles
from trainboard.store.errors import Conflict, NotFound, StorageFull
from trainboard.timeouts import BodyTimeout
from trainboard.worker.pool import WorkerPool

log = logging.getLogger("trainboard")
KEEP_SWEEPS_SECONDS = 5.0


def create_app(
    settings: Settings | None = None, *, workers: int = 0, bind_host: str = "127.0.0.1"
) -> FastAPI:
    """The web app and REST API; with `workers` > 0 it also runs that many worker processes."""
    settings = settings or Settings()
    writes = WritesFirst()  # the point writer's commits, which reads let go first

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_dirs()
        engine = make_engine(settings.resolved_database_url)
        init_db(engine)
        app.state.settings, app.state.engine = settings, engine
        app.state.live = LiveEvents(engine, settings)
        app.state.point_writer = PointWriter(engine, writes)
        poller = live.start(app.state.live)
        keeper = asyncio.get_running_loop().create_task(keep_sweeps(engine))
        watchdog = asyncio.get_running_loop().create_task(keep_external_runs(engine, settings))
        embedded = WorkerPool(settings, workers)
        embedded.start()
        # What start-up made (modules, the app, its routes: ~300,000 objects) lives as long
        # as the server. Frozen, the collector stops walking it: a full collection under load
        # then takes milliseconds where it took ~200 ms, stalling every request in flight.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            keeper.cancel()
            watchdog.cancel()
            poller.cancel()
            embedded.stop()
            app.state.point_writer.close()
            engine.dispose()

    app = FastAPI(title="trainboard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    # Multipart framing adds a little to the file itself, whose own limit is checked on read.
    app.add_middleware(
        BodySizeLimit,
        max_json_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes + 64 * 1024,
        max_file_bytes=settings.max_checkpoint_bytes,
    )
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_seconds)
    app.add_middleware(ReadTurns, concurrent=settings.concurrent_reads, writes=writes)
    allowed = settings.allowed_hosts or (
        [h.strip("[]") for h in LOOPBACK_HOSTS] + ["[::1]", "testserver"]
        if bind_host in LOOPBACK_HOSTS
        else ["*"]
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed)
    # Inside CORS, which answers preflights and labels refusals for the origins it allows.
    app.add_middleware(SameOriginWrites, allowed_origins=settings.cors_origins)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    _add_error_handlers(app)

    app.include_router(system.public, prefix="/api")
    protected = [Depends(require_token)]
    for module in (runs, checks, sweeps, metrics, events, checkpoints):
        app.include_router(module.router, prefix="/api", dependencies=protected)
    app.include_router(runlog.router, prefix="/api", dependencies=protected)
    app.include_router(serving.router, prefix="/api", dependencies=protected)
    app.include_router(aliases.router, prefix="/api", dependencies=protected)
    app.include_router(system.router, prefix="/api", dependencies=protected)
    for module in (remote, remotefiles):  # the workers' token opens these alone
        app.include_router(
            module.router, prefix="/api", dependencies=[Depends(require_worker_token)]
        )
    _mount_frontend(app, settings)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 404)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 409)

    @app.exception_handler(StorageFull)
    async def storage_full(_request: Request, exc: StorageFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 507)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Anything reaching here is a bug; the client still gets a sentence, the log the traceback.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, 500)


async def keep_sweeps(engine: Engine) -> None:
    """Drive every running sweep now (after a restart it continues where it was) and every
    KEEP_SWEEPS_SECONDS: a trial whose worker died, or whose end was recorded by a process
    that could not reach the study, is told and replaced here."""
    from trainboard.sweeps.driver import drive_all

    while True:
        try:
            await anyio.to_thread.run_sync(drive_all, engine)
        except Exception:
            log.exception("driving the sweeps failed")
        await asyncio.sleep(KEEP_SWEEPS_SECONDS)


def _mount_frontend(app: FastAPI, settings: Settings) -> None:
    frontend = settings.frontend_dir
    for package in ("uplot", "echarts"):  # the charting libraries' builds, nothing else of npm
        dist = frontend / "node_modules" / package / "dist"
        if dist.is_dir():
            app.mount(f"/vendor/{package}", StaticFiles(directory=dist), name=package)
    if (frontend / "index.html").is_file():
        app.mount("/static", PageFiles(directory=frontend), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> Any:
            return FileResponse(frontend / "index.html", headers={"Cache-Control": "no-cache"})
