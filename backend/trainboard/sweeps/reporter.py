"""A sweep trial's reporter: a sink beside the store's on the recording side, which reports each
epoch's objective value to the study and, with the median pruner, asks whether to go on. When
the answer is no, it asks whoever trains the trial to stop (`stop`, set by the worker: the
child stops at its next step, within the epoch) and the attempt ends `pruned`, saying at which
epoch and against which value."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from trainboard.sweeps.space import SweepCreate
from trainboard.sweeps.study import median_at, open_study
from trainboard.training.checkpoint import CheckpointEntry
from trainboard.training.exits import End, Exit, Outcome
from trainboard.training.sinks import EpochReport

log = logging.getLogger(__name__)


class TrialReporter:
    def __init__(self, url: str, sweep_id: int, request: SweepCreate, number: int) -> None:
        self.url, self.sweep_id, self.request, self.number = url, sweep_id, request, number
        self.stop: Callable[[], None] = lambda: None
        self.pruned: dict[str, Any] | None = None
        self._trial: Any = None
        self._study: Any = None
        # Optuna loads and the study opens while the trial's first epoch trains, so that the
        # first answer of the pruner is not late.
        self._opening = threading.Thread(target=self._open, name="study", daemon=True)
        self._opening.start()

    def _open(self) -> None:
        try:
            import optuna

            study = open_study(self.url, self.sweep_id, self.request)
            trial_id = study._storage.get_trial_id_from_study_id_trial_number(
                study._study_id, self.number
            )
            self._study, self._trial = study, optuna.trial.Trial(study, trial_id)
        except Exception:
            log.exception(
                "sweep %s trial %s: the study cannot be opened", self.sweep_id, self.number
            )

    def log_epoch(self, report: EpochReport) -> None:
        metric = self.request.objective.metric
        value = report.metrics.get(metric)
        if self.pruned is not None or value is None or not math.isfinite(value):
            return
        self._opening.join()
        trial = self._trial
        if trial is None:
            return
        try:
            trial.report(value, report.epoch)
            if self.request.pruner == "none" or not trial.should_prune():
                return
            against = median_at(self._study, report.epoch, exclude=self.number)
        except Exception:  # the study is advice: a failure to reach it never stops the run
            log.exception(
                "sweep %s trial %s: reporting to the study failed", self.sweep_id, self.number
            )
            return
        self.pruned = {"epoch": report.epoch, "metric": metric, "value": value, "against": against}
        self.stop()

    def final(self, end: End) -> End:
        """The attempt's end: `pruned` when this reporter stopped it."""
        if self.pruned is None or not isinstance(end, Outcome) or end.exit is not Exit.cancelled:
            return end
        p = self.pruned
        against = "" if p["against"] is None else f" against the median {p['against']:.4g}"
        message = (
            f"Pruned at epoch {p['epoch']}: {p['metric']} {p['value']:.4g}{against} of the "
            "finished trials at that epoch."
        )
        return Outcome(Exit.pruned, end.epoch, message, {**end.summary, "pruned": p})

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def log_checkpoints(self, entries: list[CheckpointEntry]) -> None:
        pass

    def close(self, end: End) -> None:
        pass
