"""Why a training run ended."""

from enum import StrEnum


class Exit(StrEnum):
    completed = "completed"  # every epoch ran
    early_stopped = "early_stopped"  # the monitored metric stopped improving (a completed run)
    cancelled = "cancelled"  # a person asked it to stop
    interrupted = "interrupted"  # its process is shutting down; it should be queued again
    diverged = "diverged"  # loss or gradients went NaN/Inf
