"""A sweep trial's reporter: a sink beside the store's on the recording side, which reports each
epoch's objective value to the study and, with the median pruner, asks whether to go on. When
the answer is no, it asks whoever trains the trial to stop (`stop`, set by the worker: the
child stops at its next step, within the epoch) and the attempt ends `pruned`, saying at which
epoch and against which value.

The recording thread only hands each value to the reporter's own thread, which writes it to the
study and asks the pruner. The pruner is Optuna's own, asked about the finished trials as last
read: they are counted at most once a second and read again only when their count changes,
not at every epoch as `Trial.should_prune` does.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trainboard.sweeps.space import SweepCreate
from trainboard.sweeps.study import count_finished, median_at, open_study
from trainboard.training.checkpoint import CheckpointEntry
from trainboard.training.exits import End, Exit, Outcome
from trainboard.training.sinks import EpochReport

log = logging.getLogger(__name__)

DRAIN_SECONDS = 30.0  # at the end, how long the last reports may take to reach the study
RECOUNT_SECONDS = 1.0  # the finished trials are counted at most this often


@dataclass
class _TrialSoFar:
    """What Optuna's percentile pruner reads of the trial it judges."""

    intermediate_values: dict[int, float] = field(default_factory=dict)

    @property
    def last_step(self) -> int | None:
        return max(self.intermediate_values, default=None)


class _FinishedTrials:
    """What Optuna's percentile pruner reads of the study: its direction and finished trials."""

    def __init__(self, url: str, study: Any) -> None:
        self.url, self.study, self.direction = url, study, study.direction
        self.trials: list[Any] = []
        self.count, self.counted_at = -1, -math.inf

    def refresh(self) -> None:
        from optuna.trial import TrialState

        if time.monotonic() - self.counted_at < RECOUNT_SECONDS:
            return
        self.counted_at = time.monotonic()
        count = count_finished(self.url, self.study)
        if count != self.count:
            self.trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self.count = count

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[Any]:
        return self.trials


class TrialReporter:
    def __init__(self, url: str, sweep_id: int, request: SweepCreate, number: int) -> None:
        self.url, self.sweep_id, self.request, self.number = url, sweep_id, request, number
        self.stop: Callable[[], None] = lambda: None
        self.pruned: dict[str, Any] | None = None
        self._values: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
        self._ended = False
        self.opened = threading.Event()  # the study is open (or could not be)
        # Optuna loads and the study opens while the trial's first epoch trains, so that the
        # first answer of the pruner is not late.
        self._thread = threading.Thread(target=self._serve, name="study", daemon=True)
        self._thread.start()

    def log_epoch(self, report: EpochReport) -> None:
        value = report.metrics.get(self.request.objective.metric)
        if self.pruned is None and value is not None and math.isfinite(value):
            self._values.put((report.epoch, float(value)))

    def _serve(self) -> None:
        try:
            import optuna

            study = open_study(self.url, self.sweep_id, self.request)
            storage = study._storage
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, self.number)
            pruner = study.pruner
            finished = _FinishedTrials(self.url, study)
            so_far = _TrialSoFar()
            prunes = not isinstance(pruner, optuna.pruners.NopPruner)
        except Exception:  # the study is advice: a failure to reach it never stops the run
            log.exception("sweep %s trial %s: no study to report to", self.sweep_id, self.number)
            return
        finally:
            self.opened.set()
        while (item := self._values.get()) is not None:
            epoch, value = item
            try:
                storage.set_trial_intermediate_value(trial_id, epoch, value)
                so_far.intermediate_values[epoch] = value
                if self.pruned is not None or not prunes:
                    continue
                finished.refresh()
                if not pruner.prune(finished, so_far):
                    continue
                against = median_at(finished.trials, epoch)
            except Exception:
                log.exception(
                    "sweep %s trial %s: reporting to the study failed", self.sweep_id, self.number
                )
                continue
            metric = self.request.objective.metric
            self.pruned = {"epoch": epoch, "metric": metric, "value": value, "against": against}
            self.stop()

    def _drain(self) -> None:
        """Wait until every reported value is in the study (before the trial is told)."""
        if not self._ended:
            self._ended = True
            self._values.put(None)
        self._thread.join(DRAIN_SECONDS)

    def final(self, end: End) -> End:
        """The attempt's end: `pruned` when this reporter stopped it."""
        self._drain()
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
        self._drain()
