"""`trainboard sync DIR`: send spooled runs to a server. Safe to repeat: what was sent is
recorded per server in the spool's run.json, and the server replaces a (key, step) anyway."""

from __future__ import annotations

from pathlib import Path

from trainboard.tracking.sender import CHUNK_POINTS
from trainboard.tracking.spool import Spool
from trainboard.tracking.transport import Refused, Transport


def sync_spool(folder: Path, *, url: str | None, token: str | None) -> tuple[int, int]:
    """Send one run's spool to `url` (default: the server it was logged for): create the run
    if that server has none for it yet, send the points not sent yet, then the finish.
    Returns (run id, points sent); raises Unreachable or Refused."""
    spool = Spool.open(folder)
    target = (url or spool.url).rstrip("/")
    upload = spool.upload(target)
    transport = Transport(target, token)
    try:
        if upload["run_id"] is None:
            upload["run_id"] = transport.create_run(spool.meta["create"])
            spool.save()  # before any point: a second sync must not create a second run
        run_id, sent = int(upload["run_id"]), 0
        while True:
            points, offset = spool.unsent(target, CHUNK_POINTS)
            if not points:
                break
            transport.send_points(run_id, points)
            upload["sent_bytes"], sent = offset, sent + len(points)
            spool.save()
        finish = spool.meta.get("finish")
        if finish and not upload["finished"]:
            try:
                transport.finish(run_id, finish)
            except Refused as exc:
                if exc.status != 409:  # 409: it has finished already
                    raise
            upload["finished"] = True
            spool.save()
        return run_id, sent
    finally:
        transport.close()
