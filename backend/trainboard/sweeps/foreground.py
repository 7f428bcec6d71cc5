"""`trainboard sweep SPEC.json` and `trainboard.sweep(...)`: a sweep run to its end in this
process, no server needed. The sweep, its study and its trials live in the database as they do
for a server's sweeps (the page shows them), and the same driver asks for the trials; they are
trained here one after another, each in this process as `trainboard train` trains a run."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine

from trainboard.config import Settings
from trainboard.db import reader, session_scope
from trainboard.models import Run, RunStatus, Sweep, SweepStatus
from trainboard.store import queue
from trainboard.store import sweeps as store
from trainboard.sweeps.driver import drive
from trainboard.sweeps.space import SweepCreate
from trainboard.training.exits import Exit
from trainboard.worker.foreground import WORKER_ID, train_claimed
from trainboard.worker.stop import StopFlag

WAIT_SECONDS = 0.5  # between looks while another process trains this sweep's last trials


def sweep_in_foreground(
    settings: Settings,
    engine: Engine,
    request: SweepCreate,
    *,
    device: str = "cpu",
    say: Callable[[str], None] = print,
) -> Sweep:
    """Create the sweep, train its trials here until it ends, and return it. Ctrl-C stops the
    running trial at its next step and leaves the sweep running: `trainboard serve` (or this
    command's sweep id with a worker) continues it."""
    with session_scope(engine) as session:
        sweep_id = (
            store.create_sweep(
                session, name=request.name, config=request.model_dump(mode="json")
            ).id
            or 0
        )
    say(f"sweep {sweep_id}: {request.trials()} trials, {request.sampler} sampler")
    stop = StopFlag()
    stop.install_signal_handlers()
    while True:
        drive(engine, sweep_id)
        with session_scope(reader(engine)) as session:
            sweep = store.get_sweep(session, sweep_id=sweep_id)
            runs = store.trial_runs(session, sweep_id=sweep_id)
        if sweep.status != SweepStatus.running:
            break
        queued = [r for r in runs if r.status == RunStatus.queued]
        if not queued:
            time.sleep(WAIT_SECONDS)  # its running trials belong to another process
            continue
        status = _train(settings, engine, queued[0], device, stop)
        if stop.reason is Exit.interrupted:
            say(f"stopped; sweep {sweep_id} goes on when a worker or `trainboard serve` runs")
            return sweep
        stop.reason = None
        if status is not None:
            say(f"trial {queued[0].name}: {status.value}")
    if sweep.best_run_id is not None:
        say(
            f"sweep {sweep_id} {sweep.status}: best run {sweep.best_run_id}, "
            f"{request.objective.metric} {sweep.best_value:.6g}, params {sweep.best_params}"
        )
    return sweep


def _train(
    settings: Settings, engine: Engine, run: Run, device: str, stop: StopFlag
) -> RunStatus | None:
    with session_scope(engine) as session:
        attempt = queue.claim_run(session, run_id=run.id or 0, worker_id=WORKER_ID, device=device)
    if attempt is None:
        return None  # a worker took it first
    return train_claimed(settings, engine, run.id or 0, attempt, device, stop)
