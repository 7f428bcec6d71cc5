"""Live events (server-sent events): metrics, status, checkpoint and log events of one run.

Each event's id is a cursor `metric-checkpoint-status-log` of four positions; a client that
reconnects with `Last-Event-ID` continues from exactly there: nothing missed, nothing twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from trainboard.api.deps import EngineDep, RunDep, SettingsDep
from trainboard.api.views import checkpoint_public, run_public
from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.models import FINAL_STATUSES
from trainboard.store.checkpoints import checkpoints_since
from trainboard.store.metrics import points_since
from trainboard.store.runs import get_run

router = APIRouter(tags=["events"])

POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0
MAX_POINTS_PER_EVENT = 5000
MAX_LOG_BYTES = 64 * 1024
CURSOR = re.compile(r"^(\d{1,18})-(\d{1,18})-(\d{1,18})-(\d{1,18})$")


@dataclass(frozen=True)
class Cursor:
    metric: int = 0
    checkpoint: int = 0
    status: int = 0
    log: int = 0

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        match = CURSOR.match(text or "")
        return cls(*(int(g) for g in match.groups())) if match else cls()

    def __str__(self) -> str:
        return f"{self.metric}-{self.checkpoint}-{self.status}-{self.log}"


def _sse(event: str, cursor: Cursor, data: Any) -> str:
    return (
        f"id: {cursor}\nevent: {event}\ndata: {json.dumps(data, default=str, allow_nan=False)}\n\n"
    )


def poll(
    engine: Engine, settings: Settings, run_id: int, cursor: Cursor
) -> tuple[list[str], Cursor, bool]:
    """Everything new since `cursor`, as formatted events; and whether the run has ended."""
    events: list[str] = []
    with session_scope(reader(engine)) as session:
        run = get_run(session, run_id=run_id)
        points = points_since(
            session, run_id=run_id, after_seq=cursor.metric, limit=MAX_POINTS_PER_EVENT
        )
        checkpoints = checkpoints_since(session, run_id=run_id, after_seq=cursor.checkpoint)
    if points:
        cursor = replace(cursor, metric=points[-1][4])
        data = [{"key": k, "step": s, "value": v, "timestamp": t} for k, s, v, t, _ in points]
        events.append(_sse("metrics", cursor, {"points": data}))
    for row in checkpoints:
        cursor = replace(cursor, checkpoint=row.seq)
        events.append(_sse("checkpoint", cursor, checkpoint_public(row).model_dump(mode="json")))
    log_path = settings.run_dir(run_id) / "run.log"
    if log_path.exists() and log_path.stat().st_size > cursor.log:
        with log_path.open("rb") as handle:
            handle.seek(cursor.log)
            chunk = handle.read(MAX_LOG_BYTES)
        complete = chunk[: chunk.rfind(b"\n") + 1] or (
            chunk if len(chunk) == MAX_LOG_BYTES else b""
        )
        if complete:
            cursor = replace(cursor, log=cursor.log + len(complete))
            lines = complete.decode("utf-8", errors="replace").splitlines()
            events.append(_sse("log", cursor, {"lines": lines}))
    if run.status_seq > cursor.status:
        cursor = replace(cursor, status=run.status_seq)
        events.append(_sse("status", cursor, run_public(run, settings).model_dump(mode="json")))
    return events, cursor, run.status in FINAL_STATUSES


@router.get("/runs/{run_id}/events", response_class=StreamingResponse)
async def run_events(
    run: RunDep,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> StreamingResponse:
    run_id = run.id
    start = Cursor.parse(last_event_id or request.query_params.get("last_event_id"))

    async def stream() -> AsyncIterator[str]:
        # StreamingResponse cancels this generator when the client disconnects.
        cursor, idle = start, 0.0
        yield "retry: 1000\n\n"
        while True:
            events, cursor, ended = await anyio.to_thread.run_sync(
                poll, engine, settings, run_id, cursor
            )
            for event in events:
                yield event
            if ended and not events:
                return
            if events:
                idle = 0.0
                continue  # drain a backlog without waiting
            idle += POLL_SECONDS
            if idle >= KEEPALIVE_SECONDS:
                idle = 0.0
                yield ": keep-alive\n\n"
            await anyio.sleep(POLL_SECONDS)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
