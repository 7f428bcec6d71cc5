"""The process a worker trains each run in (`python -m trainboard.worker.child --channel FD`),
and `Child`, the worker's handle on it.

It starts before there is a run to train: it imports torch and builds a throwaway optimizer (the
first one loads torch._dynamo, ~1 s), then waits for one `Job` on stdin. It only trains: its
metrics, checkpoints and end go down the channel (a pipe) to the worker, which records them, so
it imports nothing of the database. A fresh process per run keeps a crash, segfault or
out-of-memory of one run away from the worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

from trainboard.lifetime import follow_parent
from trainboard.worker.stop import StopFlag


@dataclass
class Child:
    """A run's process and the read end of its channel."""

    process: subprocess.Popen[bytes]
    channel: Connection

    @classmethod
    def start(cls) -> Child:
        from trainboard.worker.channel import open_channel

        read_fd, write_fd = open_channel()
        process = subprocess.Popen(
            [sys.executable, "-m", "trainboard.worker.child", "--channel", str(write_fd)],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,  # a Ctrl-C meant for the worker must not hit the run
        )
        os.close(write_fd)  # the child holds it now: its exit is our end of the channel
        return cls(process, Connection(read_fd, writable=False))

    def discard(self) -> None:
        """Kill a child that holds no run yet."""
        self.process.kill()
        self.process.wait()
        self.channel.close()


def describe_exit(returncode: int) -> str:
    """Why a child that recorded no end is gone, from its exit status, for the run's error."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = (
            " (often out of memory)"
            if name == "SIGKILL"
            else " (a crash in native code)"
            if name == "SIGSEGV"
            else ""
        )
        return f"The run's process was killed by {name}{hint}; the full log has what it printed."
    return (
        f"The run's process exited with code {returncode} before recording a result; see the log."
    )


def warm_up() -> None:
    """Load what every run needs, so a run starts training at once."""
    import torch

    from trainboard.training import loop  # noqa: F401  (models, data sets, optimizers)

    layer = torch.nn.Linear(2, 1)
    torch.optim.AdamW(layer.parameters()).step()


def torch_threads(setting: int, device: str) -> int:
    """The run's torch CPU threads: the setting, else on a CPU device every core torch would
    take but one, which the worker records on (sharing every core with it slows training more
    than the one thread fewer does); else torch's own default."""
    import torch

    if setting:
        return setting
    default = torch.get_num_threads()
    return max(1, default - 1) if device == "cpu" else default


def main() -> int:
    # Handlers first: a cancel that arrives while torch is still importing must not kill us.
    stop = StopFlag()
    stop.install_signal_handlers()
    follow_parent()
    warm_up()
    import torch

    from trainboard.training.exits import RecordingLost
    from trainboard.worker.channel import ChannelSink
    from trainboard.worker.job import Job, run_job

    channel_fd = int(sys.argv[sys.argv.index("--channel") + 1])
    line = sys.stdin.readline()
    if not line:
        return 0  # the worker went away before giving us a run
    job = Job.from_line(line)
    log = os.open(job.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    torch.set_num_threads(torch_threads(job.torch_threads, job.device))
    print(f"{job.describe()} ({torch.get_num_threads()} torch threads)", flush=True)
    channel = ChannelSink(Connection(channel_fd, readable=False))
    try:
        run_job(job, sink=channel, checkpoints=channel, should_stop=stop)
    except RecordingLost as exc:
        print(f"{exc}; stopping", flush=True)
        return 1
    channel.connection.close()  # the worker records the end now, not after our exit
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
