"""The remote workers' protocol (`trainboard worker --server URL`): claim a run, hold its lease,
send its reports, checkpoints and log, and end the attempt, through these routes alone. The
server records everything (`worker.relay`): database rows, TensorBoard files, checkpoint files.

Every route of an attempt is guarded by (run, attempt): once another attempt holds the run,
they answer 409 and write nothing. Reports and checkpoints may be sent again after a lost
answer: a report batch already applied, or an epoch's checkpoint already kept, is skipped.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response
from pydantic import Field

from trainboard.api.deps import DatabaseDep, RunId, SettingsDep
from trainboard.jsonsafe import NoNul
from trainboard.schemas import StrictBody
from trainboard.store import queue
from trainboard.store.workers import heartbeat_worker, register_worker
from trainboard.training.data.uploads import has_upload
from trainboard.training.exits import Failure, RecordingLost

if TYPE_CHECKING:
    from trainboard.worker.relay import Relay

router = APIRouter(prefix="/remote", tags=["remote workers"])
RELAY_LOCK = threading.Lock()

Attempt = Annotated[int, Path(ge=1, le=1_000_000)]
WorkerName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class WorkerBeat(StrictBody):
    """Who a remote worker is and what it is doing."""

    worker_id: WorkerName
    host: Annotated[str, Field(max_length=255), NoNul()] = ""
    pid: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    device: Annotated[str, Field(pattern=r"^(cpu|cuda(:\d{1,2})?)$")] = "cpu"
    devices: Annotated[int, Field(ge=1, le=4096)] = 1
    status: Annotated[str, Field(pattern=r"^(idle|busy|stopped)$")] = "idle"
    run_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


class EndRequest(StrictBody):
    end: dict[str, Any]


def relay_of(request: Request) -> Relay:
    """The server's relay, made on first use (it loads the recording side: torch and all)."""
    state = request.app.state
    with RELAY_LOCK:
        if getattr(state, "relay", None) is None:
            from trainboard.worker.recording import LocalRecordings
            from trainboard.worker.relay import Relay
            from trainboard.worker.storesink import BATCH_SECONDS

            state.relay = Relay(LocalRecordings(state.settings, state.engine, BATCH_SECONDS))
        return state.relay


@router.post("/beat", status_code=204)
def beat(body: WorkerBeat, db: DatabaseDep) -> Response:
    """A worker's heartbeat (registers it the first time, or the first since the database was
    replaced)."""
    with db.write() as session:
        if not heartbeat_worker(
            session, worker_id=body.worker_id, status=body.status, run_id=body.run_id
        ):
            info = body.model_dump(include={"host", "pid", "device", "devices"})
            register_worker(session, worker_id=body.worker_id, **info)
    return Response(status_code=204)


@router.get("/queue")
def queued(db: DatabaseDep) -> dict:
    """`{"queued": N}`: how many runs wait for a worker (what a launcher keeps jobs for)."""
    with db.read() as session:
        return {"queued": queue.count_queued(session)}


@router.post("/claim")
def claim(body: WorkerBeat, db: DatabaseDep, settings: SettingsDep, request: Request) -> dict:
    """Recover runs whose lease ran out, then claim the next queued run that fits the worker:
    `{"job": ..., "resume": checkpoint name or null, "upload": the uploaded data set it
    trains on or null, "lease_seconds": ...}`, or job null."""
    lease = settings.lease_seconds
    with db.read() as session:  # an idle worker's look takes no write lock
        # A worker asks only when idle: a run it holds was given by a claim it never heard.
        claimed = queue.held_by(session, worker_id=body.worker_id)
        if claimed is None and not queue.has_work(session, devices=body.devices):
            return {"job": None, "lease_seconds": lease}
    relay = relay_of(request)
    if claimed is None:
        with db.write() as session:
            recovered = queue.recover_expired_runs(session)
            claimed = queue.claim_next_run(
                session,
                worker_id=body.worker_id,
                device=body.device,
                lease_seconds=lease,
                devices=body.devices,
            )
        # Only once that is committed: dropping a lost attempt writes what it left pending,
        # which waits for the run's row, locked by the transaction above until its commit.
        for run_id, _ in recovered:
            relay.drop(run_id)
    if claimed is None:
        return {"job": None, "lease_seconds": lease}
    run_id, attempt = claimed
    try:
        job = relay.open(run_id, attempt, body.device).recording.job
    except Exception as exc:  # its spec no longer validates here: the run ends with why
        relay.recordings.end(run_id, attempt, Failure.from_exception(exc))
        return {"job": None, "lease_seconds": lease}
    fields = asdict(job)
    resume = job.resume_from.stem if job.resume_from is not None else None
    for local in ("run_dir", "uploads_dir", "resume_from"):  # the worker has its own folders
        fields.pop(local)
    name = job.spec["dataset"]["name"]
    upload = name if has_upload(settings.uploads_dir, name) else None
    return {"job": fields, "resume": resume, "upload": upload, "lease_seconds": lease}


@router.post("/runs/{run_id}/attempts/{attempt}/lease")
def renew_lease(
    run_id: RunId, attempt: Attempt, db: DatabaseDep, settings: SettingsDep, request: Request
) -> dict:
    """Extend the attempt's lease: `{"cancel": bool}` (a cancel, or a sweep's pruner); 409
    when another attempt holds the run."""
    with db.write() as session:
        cancel = queue.renew_lease(
            session, run_id=run_id, attempt=attempt, lease_seconds=settings.lease_seconds
        )
    if cancel is None:
        relay_of(request).drop(run_id, attempt)
        raise HTTPException(409, f"run {run_id} attempt {attempt} was taken over")
    return {"cancel": cancel or relay_of(request).pruned(run_id, attempt)}


async def _receive(request: Request) -> tuple[tempfile.SpooledTemporaryFile, str]:
    """The request body in a spooled file (in memory up to 1 MiB; the caller closes it), and
    its sha256."""
    spooled = tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115
    digest = hashlib.sha256()
    async for chunk in request.stream():
        digest.update(chunk)
        spooled.write(chunk)
    spooled.seek(0)
    return spooled, digest.hexdigest()


def _load(file: Any, what: str) -> Any:
    import torch

    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HTTPException(422, f"{what} does not load with weights_only=True: {exc}") from None


@router.post("/runs/{run_id}/attempts/{attempt}/reports", status_code=204)
async def report(
    run_id: RunId,
    attempt: Attempt,
    batch: Annotated[int, Query(ge=1, le=2**62)],
    request: Request,
) -> Response:
    """Report batch number `batch` (a `torch.save` file of the child's messages, in order)."""
    from starlette.concurrency import run_in_threadpool

    body, _ = await _receive(request)
    with body:
        messages = await run_in_threadpool(_load, body, "the report")
    if not isinstance(messages, list):
        raise HTTPException(422, "a report is a list of messages")
    try:
        await run_in_threadpool(relay_of(request).report, run_id, attempt, batch, messages)
    except RecordingLost as exc:
        await run_in_threadpool(relay_of(request).drop, run_id, attempt)
        raise HTTPException(409, str(exc)) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise HTTPException(422, f"bad report: {exc}") from None
    return Response(status_code=204)


@router.put("/runs/{run_id}/attempts/{attempt}/checkpoints/{epoch}", status_code=204)
async def put_checkpoint(
    run_id: RunId,
    attempt: Attempt,
    epoch: Annotated[int, Path(ge=0, le=10_000_000)],
    sha256: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$")],
    request: Request,
    metrics: Annotated[str, Query(max_length=100_000)] = "{}",
) -> Response:
    """The checkpoint file of `epoch`, streamed; kept only when its sha256 is the one given and
    it loads with weights_only=True."""
    from starlette.concurrency import run_in_threadpool

    body, digest = await _receive(request)
    with body:
        if digest != sha256:
            raise HTTPException(422, f"the checkpoint's sha256 is {digest}, not {sha256}")
        state = await run_in_threadpool(_load, body, "the checkpoint")
    try:
        values = json.loads(metrics)
    except json.JSONDecodeError:
        raise HTTPException(422, "metrics: not JSON") from None
    if not isinstance(state, dict) or "model_state_dict" not in state:
        raise HTTPException(422, "a checkpoint is a dict with a model_state_dict")
    if not isinstance(values, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()
    ):
        raise HTTPException(422, "metrics: a JSON object of numbers")
    relay = relay_of(request)
    try:
        await run_in_threadpool(relay.save_checkpoint, run_id, attempt, state, epoch, values)
    except RecordingLost as exc:
        await run_in_threadpool(relay.drop, run_id, attempt)
        raise HTTPException(409, str(exc)) from None
    return Response(status_code=204)


@router.post("/runs/{run_id}/attempts/{attempt}/log", status_code=204)
async def append_log(
    run_id: RunId,
    attempt: Attempt,
    offset: Annotated[int, Query(ge=0, le=2**62)],
    settings: SettingsDep,
    request: Request,
) -> Response:
    """Bytes of the attempt's log from `offset` of what the worker has sent; what the server
    already has of them (a retry) is skipped."""
    from starlette.concurrency import run_in_threadpool

    body, _ = await _receive(request)
    with body:
        data = body.read()
    log = settings.run_dir(run_id) / "run.log"
    try:
        await run_in_threadpool(relay_of(request).append_log, run_id, attempt, offset, data, log)
    except RecordingLost as exc:
        raise HTTPException(409, str(exc)) from None
    return Response(status_code=204)


@router.post("/runs/{run_id}/attempts/{attempt}/end")
def end_attempt(
    run_id: RunId, attempt: Attempt, body: Annotated[EndRequest, Body()], request: Request
) -> dict:
    """Record how the attempt ended: `{"status": the run's status}`; 409 when another attempt
    holds the run."""
    from trainboard.worker.wire import end_from_wire

    try:
        end = end_from_wire(body.end)
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPException(422, f"bad end: {exc}") from None
    try:
        status = relay_of(request).end(run_id, attempt, end)
    except RecordingLost:
        status = None
    if status is None:
        raise HTTPException(409, f"run {run_id} attempt {attempt} was taken over")
    return {"status": status}
