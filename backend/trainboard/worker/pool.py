"""The workers of `trainboard serve --workers N`, started and stopped with the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from trainboard.config import Settings
from trainboard.lifetime import follow_parent

STOP_GRACE_SECONDS = 30


class WorkerPool:
    """N `trainboard worker` processes that live and die with the server that started them."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings, self.count = settings, count
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = os.environ | {
            "TRAINBOARD_HOME": str(self.settings.home.resolve()),
            "TRAINBOARD_DATABASE_URL": self.settings.resolved_database_url,
        }
        # A server killed with SIGKILL cannot stop its workers; they would claim runs on as
        # orphans, and a restarted server would start a second set. The kernel sends them
        # SIGTERM instead. start() runs in the lifespan, on the event loop's thread, which lives
        # as long as the server: the signal follows the thread that started the child.
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "trainboard", "worker"],
                    env=env,
                    preexec_fn=follow_parent,
                )
            )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # running runs are requeued at their next step
        for process in self.processes:
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
