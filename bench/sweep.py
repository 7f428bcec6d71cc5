"""What the sweep machinery costs, against the plain queue in the same run, on SQLite (a fresh
database in a temporary folder). Prints `name: value unit` lines.

- per trial: the driver's ask (Optuna, TPE) and queueing of a trial, against queueing a plain
  run of the same spec; and its tell when a trial ends;
- per epoch: a trial's report to the study and the median pruner's answer (what the worker does
  after each epoch of a trial), against a digits MLP epoch of the loop.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from trainboard.config import Settings
from trainboard.db import init_db, make_engine, session_scope
from trainboard.models import RunStatus
from trainboard.store import queue
from trainboard.store import sweeps as sweep_store
from trainboard.store.runs import create_job_run
from trainboard.sweeps.driver import drive
from trainboard.sweeps.reporter import TrialReporter
from trainboard.sweeps.space import SweepCreate
from trainboard.sweeps.study import distributions, open_study
from trainboard.training.exits import Exit, Outcome
from trainboard.training.loop import train
from trainboard.training.sinks import EpochReport, MemorySink
from trainboard.training.spec import RunSpec

TRIALS, EPOCHS = 40, 50
BASE = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "epochs": EPOCHS}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(home=Path(folder))
        settings.ensure_dirs()
        engine = make_engine(settings.resolved_database_url)
        init_db(engine)
        url = engine.url.render_as_string(hide_password=False)
        spec = RunSpec.model_validate(BASE)

        start = time.perf_counter()
        for _ in range(TRIALS):
            with session_scope(engine) as session:
                create_job_run(session, spec=spec)
        plain = (time.perf_counter() - start) / TRIALS

        request = SweepCreate.model_validate(
            {
                "base": BASE,
                "space": {
                    "optimizer.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
                    "optimizer.name": {"type": "categorical", "choices": ["sgd", "adamw"]},
                },
                "n_trials": TRIALS,
                "parallelism": TRIALS,
                "sampler": "tpe",
            }
        )
        with session_scope(engine) as session:
            sweep_id = (
                sweep_store.create_sweep(
                    session, name="bench", config=request.model_dump(mode="json")
                ).id
                or 0
            )
        drive(engine, sweep_id)  # the first drive opens Optuna's storage: not counted
        with session_scope(engine) as session:
            trials = sweep_store.trial_runs(session, sweep_id=sweep_id)
        ask = []
        # Per trial from here: end one trial as completed, then drive (tell it, ask and queue
        # the next), as a worker does after each trial.
        for run in trials[: TRIALS // 2]:
            with session_scope(engine) as session:
                attempt = queue.claim_run(session, run_id=run.id or 0, worker_id="b", device="cpu")
                queue.finish_run(
                    session, run_id=run.id or 0, attempt=attempt or 0, status=RunStatus.completed
                )
            started = time.perf_counter()
            drive(engine, sweep_id)
            ask.append(time.perf_counter() - started)
        per_trial = statistics.median(ask)
        print(f"queue_plain_run: {1000 * plain:.2f} ms")
        print(f"sweep_tell_ask_queue_per_trial: {1000 * per_trial:.2f} ms")
        print(f"sweep_overhead_per_trial: {1000 * (per_trial - plain):.2f} ms")

        # Per epoch: the finished trials the median pruner compares with (20 of 50 epochs).
        from optuna.trial import create_trial

        study = open_study(url, sweep_id, request)
        for n in range(20):
            study.add_trial(
                create_trial(
                    params={"optimizer.lr": 1e-3, "optimizer.name": "sgd"},
                    distributions=distributions(request),
                    value=1.0 / (n + 1),
                    intermediate_values={e: (1.0 + n) / e for e in range(1, EPOCHS + 1)},
                )
            )
        number = int(trials[-1].options["trial"])
        reporter = TrialReporter(url, sweep_id, request, number)
        reporter.opened.wait()
        handed = []
        started_all = time.perf_counter()
        for epoch in range(1, EPOCHS + 1):
            report = EpochReport(epoch, EPOCHS, {"val_loss": 0.5 / epoch}, None)
            started = time.perf_counter()
            reporter.log_epoch(report)
            handed.append(time.perf_counter() - started)
        reporter.close(Outcome(Exit.completed, EPOCHS, "", {}))
        # The reporter's thread: each epoch's write to the study and the pruner's answer.
        on_thread = (time.perf_counter() - started_all - sum(handed)) / EPOCHS
        on_recording = statistics.median(handed)

        sink = MemorySink()  # the loop's own epoch times, after a warm-up run
        few = spec.model_copy(update={"epochs": 5})
        train(few, run_dir=Path(folder) / "warm", sink=MemorySink())
        train(few, run_dir=Path(folder) / "run", sink=sink)
        epoch_seconds = statistics.median(e["epoch_seconds"] for e in sink.epochs)
        print(f"sweep_report_on_recording_thread_per_epoch: {1000 * on_recording:.3f} ms")
        print(f"sweep_report_and_prune_per_epoch: {1000 * on_thread:.2f} ms")
        print(f"digits_mlp_epoch: {1000 * epoch_seconds:.1f} ms")
        print(f"sweep_per_epoch_share: {100 * on_thread / epoch_seconds:.1f} %")
        engine.dispose()


if __name__ == "__main__":
    main()
