"""The child process a worker runs each run in (`python -m trainboard.runner`).

It starts before there is a run to execute: it imports torch and builds a throwaway optimizer
(the first one loads torch._dynamo, ~1 s), then waits for one job on stdin. A fresh process per
run keeps a crash, segfault or out-of-memory of one run away from the worker.
"""

from __future__ import annotations

import json
import os
import sys


def follow_parent() -> None:
    """Get SIGTERM when the worker dies (Linux): the run then stops at its next step and goes
    back to the queue, instead of training on as an orphan nobody supervises."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the worker was already gone before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)


def warm_up() -> None:
    import torch
    import torch.utils.tensorboard

    from trainboard import execution  # noqa: F401  (the store and the sinks)
    from trainboard.training import loop  # noqa: F401  (models, data sets, sklearn, optimizers)

    layer = torch.nn.Linear(2, 1)
    torch.optim.AdamW(layer.parameters()).step()


def main() -> int:
    from trainboard.stop import StopFlag

    # Handlers first: a cancel that arrives while torch is still importing must not kill us.
    stop = StopFlag()
    stop.install_signal_handlers()
    follow_parent()
    warm_up()
    from trainboard.config import Settings
    from trainboard.db import make_engine
    from trainboard.execution import execute_run

    line = sys.stdin.readline()
    if not line:
        return 0  # the worker went away before giving us a run
    job = json.loads(line)
    log = os.open(job["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    settings = Settings.model_validate_json(job["settings"])
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    engine = make_engine(settings.resolved_database_url)
    execute_run(
        settings,
        engine,
        run_id=job["run_id"],
        attempt=job["attempt"],
        device=job["device"],
        stop=stop,
    )
    sys.stdout.flush()
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
