"""Stop requests for a run's process: signals set a flag the loop polls after every step.
Standard library only, so a run's process can install it before its slow imports."""

from __future__ import annotations

import signal
import threading
from typing import Any

from trainboard.training.exits import Exit


class StopFlag:
    """SIGUSR1 asks to cancel; SIGTERM and SIGINT ask to stop and go back to the queue."""

    def __init__(self) -> None:
        self.reason: Exit | None = None

    def __call__(self) -> Exit | None:
        return self.reason

    def cancel(self) -> None:
        """Ask to cancel from this process (a sweep's pruner in `trainboard sweep`)."""
        self.reason = Exit.cancelled

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, _frame: Any) -> None:
            # A cancel is never downgraded to a requeue by a later SIGTERM.
            if self.reason is not Exit.cancelled:
                self.reason = Exit.cancelled if signum == signal.SIGUSR1 else Exit.interrupted

        for signum in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
