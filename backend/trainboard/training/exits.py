"""How an attempt at a run ends: the loop stopped for a reason (`Exit`) and reports an `Outcome`,
or an error ended it (`Failure`). `End` is either: what a sink's `close` receives and what the
worker records as the run's status. `RecordingLost` stops an attempt whose reports can no longer
be recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Exit(StrEnum):
    completed = "completed"  # every epoch ran
    early_stopped = "early_stopped"  # the monitored metric stopped improving (a completed run)
    cancelled = "cancelled"  # a person asked it to stop
    interrupted = "interrupted"  # its process is shutting down; it should be queued again
    diverged = "diverged"  # loss or gradients went NaN/Inf
    pruned = "pruned"  # a sweep's pruner stopped the trial (set by the recording side)


@dataclass
class Outcome:
    """The loop stopped: why, after which epoch, and the run's summary at that point."""

    exit: Exit
    epoch: int  # last completed epoch
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failure:
    """The attempt raised: its message (the traceback is in the run's log). `retry`: the
    cause was outside the run (one of its processes was lost), so it is queued again while
    it has retries left."""

    message: str
    retry: bool = False

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        if isinstance(exc, RankLost):
            return cls(str(exc), retry=True)
        return cls(f"{type(exc).__name__}: {exc}")


End = Outcome | Failure


class RecordingLost(Exception):
    """This attempt's reports can no longer be recorded: another attempt took the run over, or
    the process that records them went away. The attempt stops and nothing more is written."""


class RunTakenOver(RecordingLost):
    """Another attempt holds the run now; this one must stop without writing."""


class RankLost(Exception):
    """A process of a run on several devices was killed: the attempt fails and the run is
    retried from its latest checkpoint."""


class RankFailed(RuntimeError):
    """A process of a run on several devices raised: the attempt fails, and the run's log has
    that rank's traceback."""
