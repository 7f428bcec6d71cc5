"""A run on several devices: its process becomes rank 0, starts ranks 1..N-1 as processes of
their own (`worker.rank`), and all of them join one process group and
train the same job through the shared loop (`training.distributed`).

Why this and not torchrun's elastic launcher: the run already has a warm process that holds its
channel, stop flag and log. As rank 0 it keeps them, so reporting, cancel and the worker's view
of the run are the same as on one device, and only the other ranks are new processes. The
rendezvous is a TCPStore that rank 0 opens on 127.0.0.1 on a port the kernel picks, so runs
side by side never collide. Elastic restarts are the queue's job here: a rank that dies fails
the attempt (`RankLost`), and the run is retried from its latest checkpoint.

The other ranks die with rank 0 (`lifetime.follow_parent`), and every collective has a timeout,
so a rank that dies or hangs never leaves the others waiting forever.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from trainboard.training.exits import RankFailed, RankLost

if TYPE_CHECKING:
    from torch.distributed import TCPStore

    from trainboard.training.distributed import ProcessGroup

# Every rank must have joined within this; a collective that waits longer fails the attempt.
JOIN_SECONDS = 120.0
COLLECTIVE_SECONDS = 120.0
EXIT_SECONDS = 10.0  # the other ranks' time to leave after the run ended
ENDS_SECONDS = 2.0  # how long a failed rank 0 waits to learn how the others ended


def join_group(rank: int, world: int, store: TCPStore, *, cuda: bool) -> ProcessGroup:
    """Join the run's process group as `rank` of `world`: NCCL on GPU `rank`, else gloo."""
    import torch
    import torch.distributed as dist

    from trainboard.training.distributed import ProcessGroup

    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=COLLECTIVE_SECONDS)
    dist.init_process_group(
        "nccl" if cuda else "gloo", store=store, rank=rank, world_size=world, timeout=timeout
    )
    control = dist.new_group(backend="gloo", timeout=timeout) if cuda else None
    return ProcessGroup(rank=rank, world=world, device=device, control=control)


def rendezvous(port: int, *, leader: bool, world: int) -> TCPStore:
    """The run's TCPStore on 127.0.0.1: opened by rank 0 (port 0: the kernel picks one)."""
    from torch.distributed import TCPStore

    return TCPStore(
        "127.0.0.1",
        port,
        world,
        is_master=leader,
        wait_for_workers=False,
        timeout=timedelta(seconds=JOIN_SECONDS),
    )


@contextmanager
def process_group(job_line: bytes, world: int, *, cuda: bool) -> Iterator[ProcessGroup]:
    """Rank 0's side of a job (`job_line`, as `Job.to_line` writes it) on `world` devices:
    start the other ranks, join the group with them, and on the way out leave it and see the
    others gone. Each rank takes an equal share of this process's torch threads.

    When rank 0 fails, the other ranks' ends say why: one killed by a signal is `RankLost`
    (the run is retried); a failed collective beside one that exited with an error is
    `RankFailed`, pointing at its traceback in the log; otherwise rank 0's own error stands."""
    import torch
    import torch.distributed as dist

    store = rendezvous(0, leader=True, world=world)
    threads = torch.get_num_threads()
    share = str(rank_threads(threads, world))
    others: list[subprocess.Popen[bytes]] = []
    try:
        for rank in range(1, world):
            process = subprocess.Popen(
                [sys.executable, "-m", "trainboard.worker.rank", str(rank), str(store.port), share],
                stdin=subprocess.PIPE,  # their output goes where rank 0's does: the run's log
                start_new_session=True,  # Ctrl-C at `trainboard train` stops rank 0, then all
            )
            others.append(process)
            assert process.stdin is not None
            process.stdin.write(job_line)
            process.stdin.close()
        torch.set_num_threads(int(share))
        yield join_group(0, world, store, cuda=cuda)
    except Exception as exc:
        ends = _ends(others)
        killed = [(rank, -code) for rank, code in ends if code < 0]
        if killed:
            rank, signum = killed[0]
            raise RankLost(
                f"rank {rank}'s process was killed by {signal.Signals(signum).name}"
            ) from exc
        failed = [rank for rank, code in ends if code > 0]
        if failed and isinstance(exc, RuntimeError):  # what a collective raises when a peer left
            message = f"rank {failed[0]}'s process failed; the run's log has its traceback"
            raise RankFailed(message) from exc
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        _reap(others)
        torch.set_num_threads(threads)


def _ends(others: list[subprocess.Popen[bytes]]) -> list[tuple[int, int]]:
    """(rank, exit status) of the other ranks that have ended, after waiting up to
    ENDS_SECONDS for them all: a peer notices a rank's death before its parent does."""
    deadline = time.monotonic() + ENDS_SECONDS
    while time.monotonic() < deadline and any(p.poll() is None for p in others):
        time.sleep(0.05)
    return [
        (rank, p.returncode) for rank, p in enumerate(others, start=1) if p.returncode is not None
    ]


def _reap(others: list[subprocess.Popen[bytes]]) -> None:
    for process in others:
        try:
            process.wait(timeout=EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rank_threads(threads: int, world: int) -> int:
    """Each rank's torch threads: the run's share of the CPU divided among its ranks."""
    return max(1, threads // world)
