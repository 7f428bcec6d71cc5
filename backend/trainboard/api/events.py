"""Live events (server-sent events): metrics, status, checkpoint and log events of one run.

Each event's id is a cursor `metric-checkpoint-status-log` of four positions; a client that
reconnects with `Last-Event-ID` continues from exactly there: nothing missed, nothing twice.
Streams read from their run's feed (api/live.py), not from the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from trainboard.api.deps import EngineDep, LiveDep, RunDep, SettingsDep
from trainboard.api.live import Feed, Point, new_checkpoints, new_points
from trainboard.config import Settings
from trainboard.db import reader, session_scope

router = APIRouter(tags=["events"])

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
    return f"id: {cursor}\nevent: {event}\ndata: {json.dumps(data, allow_nan=False)}\n\n"


def _read_points(engine: Engine, run_id: int, after: int) -> list[tuple[int, Point]]:
    with session_scope(reader(engine)) as session:
        return new_points(session, run_id, after, MAX_POINTS_PER_EVENT)


def _read_checkpoints(engine: Engine, run_id: int, after: int) -> list[tuple[int, dict[str, Any]]]:
    with session_scope(reader(engine)) as session:
        return new_checkpoints(session, run_id, after)


def _read_log(path: Path, offset: int) -> bytes:
    """The complete lines after `offset` (a full chunk even without a line end)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read(MAX_LOG_BYTES)
    except OSError:  # the run was deleted meanwhile: its stream ends at the next tick
        return b""
    return chunk[: chunk.rfind(b"\n") + 1] or (chunk if len(chunk) == MAX_LOG_BYTES else b"")


async def _next_events(
    feed: Feed, cursor: Cursor, engine: Engine, settings: Settings
) -> tuple[list[str], Cursor]:
    """Everything after `cursor`, as formatted events: from the feed, or from the database
    when the cursor is older than what the feed holds."""
    events: list[str] = []
    assert feed.heads is not None
    if cursor.metric < feed.points_base:
        points = await anyio.to_thread.run_sync(_read_points, engine, feed.run_id, cursor.metric)
    else:
        points = feed.points_after(cursor.metric, MAX_POINTS_PER_EVENT)
    if points:
        cursor = replace(cursor, metric=points[-1][0])
        events.append(_sse("metrics", cursor, {"points": [p for _, p in points]}))
    if cursor.checkpoint < feed.checkpoints_base:
        rows = await anyio.to_thread.run_sync(
            _read_checkpoints, engine, feed.run_id, cursor.checkpoint
        )
    else:
        rows = feed.checkpoints_after(cursor.checkpoint)
    for seq, row in rows:
        cursor = replace(cursor, checkpoint=seq)
        events.append(_sse("checkpoint", cursor, row))
    if feed.log_size > cursor.log:
        path = settings.run_dir(feed.run_id) / "run.log"  # the only log file; no client path
        lines = await anyio.to_thread.run_sync(_read_log, path, cursor.log)
        if lines:
            cursor = replace(cursor, log=cursor.log + len(lines))
            text = lines.decode("utf-8", errors="replace").splitlines()
            events.append(_sse("log", cursor, {"lines": text}))
    if feed.heads.status > cursor.status and feed.run is not None:
        cursor = replace(cursor, status=feed.heads.status)
        events.append(_sse("status", cursor, feed.run))
    return events, cursor


@router.get("/runs/{run_id}/events", response_class=StreamingResponse)
async def run_events(
    run: RunDep,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    live: LiveDep,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> StreamingResponse:
    run_id = run.id
    start = Cursor.parse(last_event_id or request.query_params.get("last_event_id"))

    async def stream() -> AsyncIterator[str]:
        # StreamingResponse cancels this generator when the client disconnects.
        cursor = start
        yield "retry: 1000\n\n"
        async with live.watch(run_id) as feed:
            while not feed.gone:
                changed, ended = feed.changed, feed.ended
                events, cursor = await _next_events(feed, cursor, engine, settings)
                for event in events:
                    yield event
                if events:
                    continue  # drain a backlog without waiting
                if ended:
                    return
                with anyio.move_on_after(KEEPALIVE_SECONDS) as waited:
                    await changed.wait()
                if waited.cancelled_caught:
                    yield ": keep-alive\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
