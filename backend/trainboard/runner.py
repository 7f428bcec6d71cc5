"""The child process a worker runs each run in (`python -m trainboard.runner --channel FD`).

It starts before there is a run to execute: it imports torch and builds a throwaway optimizer
(the first one loads torch._dynamo, ~1 s), then waits for one job on stdin. It only trains:
its metrics and checkpoints go down the channel (a pipe) to the worker, which records them.
A fresh process per run keeps a crash, segfault or out-of-memory of one run away from the
worker.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from trainboard.lifetime import follow_parent

if TYPE_CHECKING:
    from trainboard.channel import ChannelSink
    from trainboard.training.exits import Exit


def warm_up() -> None:
    import torch
    import torch.utils.tensorboard

    from trainboard import execution  # noqa: F401
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
    from multiprocessing.connection import Connection

    from trainboard.channel import ChannelSink

    channel_fd = int(sys.argv[sys.argv.index("--channel") + 1])
    line = sys.stdin.readline()
    if not line:
        return 0  # the worker went away before giving us a run
    job = json.loads(line)
    log = os.open(job["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    channel = ChannelSink(Connection(channel_fd, readable=False))
    try:
        train_job(job, channel, stop)
        channel.connection.close()  # the worker records the end now, not after our exit
    except BrokenPipeError:
        print("the worker went away; stopping", flush=True)
        return 1
    sys.stdout.flush()
    return 0


def torch_threads(setting: int, device: str) -> int:
    """The run's torch CPU threads: the setting, else on a CPU device every core torch would
    take but one, which the worker records on (sharing every core with it slows training more
    than the one thread fewer does); else torch's own default."""
    import torch

    if setting:
        return setting
    default = torch.get_num_threads()
    return max(1, default - 1) if device == "cpu" else default


def train_job(job: dict, channel: ChannelSink, stop: Callable[[], Exit | None]) -> None:
    """Train the job's run, sending everything to `channel`, its end included."""
    import torch

    from trainboard.channel import Failure
    from trainboard.config import Settings
    from trainboard.execution import describe_start
    from trainboard.training.loop import train
    from trainboard.training.sinks import ConsoleSink, FanOut
    from trainboard.training.spec import RunSpec

    settings = Settings.model_validate_json(job["settings"])
    torch.set_num_threads(torch_threads(settings.torch_threads, job["device"]))
    resume_from = Path(job["resume_from"]) if job["resume_from"] else None
    print(
        describe_start(job["run_id"], job["attempt"], job["device"], resume_from)
        + f" ({torch.get_num_threads()} torch threads)",
        flush=True,
    )
    console: ConsoleSink | None = None
    try:
        spec = RunSpec.model_validate(job["spec"])
        console = ConsoleSink(spec.epochs, job["start_epoch"], stream=sys.stdout)
        train(
            spec,
            run_dir=settings.run_dir(job["run_id"]),
            sink=FanOut(channel, console),
            checkpoints=channel,
            should_stop=stop,
            resume_from=resume_from,
            uploads_dir=settings.uploads_dir,
            max_parameters=settings.max_model_parameters,
            device=job["device"],
        )
    except BrokenPipeError:
        raise
    except Exception as exc:
        traceback.print_exc()
        if console is not None:
            console.close(None)
        channel.close_with(Failure.from_exception(exc))


if __name__ == "__main__":
    raise SystemExit(main())
