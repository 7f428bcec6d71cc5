"""The server's watch over external runs: one whose script went silent ends `failed`."""

from __future__ import annotations

import asyncio
import logging
import time

import anyio
from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import session_scope
from trainboard.store.external import fail_silent_runs, grant_grace

log = logging.getLogger("trainboard")
MAX_PERIOD_SECONDS = 5.0


def check_external_runs(engine: Engine, settings: Settings, *, restarted: bool) -> list[int]:
    """Fail the external runs silent past their deadline; new ones get a deadline. After a
    restart (`restarted`) every running one gets a full timeout: the server was away, not it."""
    now = time.time()
    with session_scope(engine) as session:
        grant_grace(session, deadline=now + settings.external_timeout, all_runs=restarted)
        return fail_silent_runs(session, now=now, timeout=settings.external_timeout)


async def keep_external_runs(engine: Engine, settings: Settings) -> None:
    """Check every few seconds (a third of the timeout when that is shorter) until cancelled."""
    period = min(MAX_PERIOD_SECONDS, settings.external_timeout / 3)
    restarted = True
    while True:
        try:
            failed = await anyio.to_thread.run_sync(
                lambda first=restarted: check_external_runs(engine, settings, restarted=first)
            )
            restarted = False
            if failed:
                log.warning("external runs %s went silent and ended failed", failed)
        except Exception:
            log.exception("checking external runs failed")
        await asyncio.sleep(period)
