"""An external run's log: its script's console lines, appended by the client."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from trainboard.api.deps import DatabaseDep, RunDep, SettingsDep
from trainboard.schemas import StrictBody
from trainboard.store.errors import raise_if_disk_full
from trainboard.store.metrics import require_writable
from trainboard.store.runs import add_disk_bytes

router = APIRouter(prefix="/runs/{run_id}/log", tags=["runs"])


class LogAppend(StrictBody):
    text: Annotated[str, Field(max_length=1 << 20)]


@router.post("", status_code=202)
def append_log(
    run: RunDep, body: LogAppend, settings: SettingsDep, db: DatabaseDep
) -> dict[str, int]:
    """Append `text` to the run's log (`GET /api/runs/{id}/logs` reads it)."""
    require_writable(run, run.id, what="log")
    path = settings.run_dir(run.id) / "run.log"
    data = body.text.replace("\x00", "").encode("utf-8", errors="replace")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as handle:
            handle.write(data)
    except OSError as exc:
        raise_if_disk_full(exc, "the run's log")
        raise
    if data:
        with db.write() as session:
            add_disk_bytes(session, run_id=run.id, added=len(data))
    return {"accepted": len(body.text)}
