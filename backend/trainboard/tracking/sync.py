"""`trainboard sync DIR`: send spooled runs to a server. Safe to repeat: what was sent is
recorded per server in the spool's run.json, and the server replaces a (key, step) anyway."""

from __future__ import annotations

from pathlib import Path

from trainboard.tracking.courier import CHUNK_POINTS, say
from trainboard.tracking.delivery import send_points
from trainboard.tracking.spool import Point, Spool
from trainboard.tracking.transport import Refused, Transport
from trainboard.tracking.values import json_safe


def sync_spool(folder: Path, *, url: str | None, token: str | None) -> tuple[int, int]:
    """Send one run's spool to `url` (default: the server it was logged for): create the run
    if that server has none for it yet, send the points not sent yet, then the finish.
    A point the server will never take is left out, and said. Returns (run id, points
    sent); raises Unreachable or Refused."""
    spool = Spool.open(folder)
    target = (url or spool.url).rstrip("/")
    upload = spool.upload(target)
    transport = Transport(target, token)
    try:
        if upload["run_id"] is None:
            # json_safe: a spool of an older client may hold a config JSON cannot carry (inf).
            upload["run_id"] = transport.create_run(json_safe(spool.meta["create"]))
            spool.save()  # before any point: a second sync must not create a second run
        run_id, sent = int(upload["run_id"]), 0
        while True:
            points, offset = spool.unsent(target, CHUNK_POINTS)
            if not points:
                break
            send_points(transport, run_id, points, _set_aside)
            upload["sent_bytes"], sent = offset, sent + len(points)
            spool.save()
        finish = spool.meta.get("finish")
        if finish and not upload["finished"]:
            try:
                transport.finish(run_id, json_safe(finish))
            except Refused as exc:
                if exc.status != 409:  # 409: it has finished already
                    raise
            upload["finished"] = True
            spool.save()
        return run_id, sent
    finally:
        transport.close()


def _set_aside(points: list[Point], why: str) -> None:
    for key, step, value, _ in points:
        say(f"point {key}={value} at step {step} left out: the server refused it ({why})")
