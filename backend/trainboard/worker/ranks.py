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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from trainboard.training.exits import RankLost

if TYPE_CHECKING:
    from torch.distributed import TCPStore

    from trainboard.training.distributed import ProcessGroup

# Every rank must have joined within this; a collective that waits longer fails the attempt.
JOIN_SECONDS = 120.0
COLLECTIVE_SECONDS = 120.0
EXIT_SECONDS = 10.0  # the other ranks' time to leave after the run ended


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
    start the other ranks, join the group with them, and on the way out
    leave it and see the others gone. An error while they train becomes `RankLost` when a
    rank's process died, saying which and how. Each rank takes an equal share of this
    process's torch threads."""
    import torch
    import torch.distributed as dist

    store = rendezvous(0, leader=True, world=world)
    threads = torch.get_num_threads()
    share = str(rank_threads(threads, world))
    others: list[subprocess.Popen[bytes]] = []
    for rank in range(1, world):
        process = subprocess.Popen(
            [sys.executable, "-m", "trainboard.worker.rank", str(rank), str(store.port), share],
            stdin=subprocess.PIPE,  # their output goes where rank 0's does: the run's log
            start_new_session=True,  # a Ctrl-C at `trainboard train` stops rank 0, which stops all
        )
        assert process.stdin is not None
        process.stdin.write(job_line)
        process.stdin.close()
        others.append(process)
    torch.set_num_threads(int(share))
    try:
        yield join_group(0, world, store, cuda=cuda)
    except Exception as exc:
        lost = _first_lost(others)
        if lost is not None:
            raise RankLost(lost) from exc
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        _reap(others)
        torch.set_num_threads(threads)


def _first_lost(others: list[subprocess.Popen[bytes]]) -> str | None:
    """Which other rank ended badly (waiting briefly: its peers notice its death first)."""
    for rank, process in enumerate(others, start=1):
        try:
            code = process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            continue
        if code < 0:
            return f"rank {rank}'s process was killed by {signal.Signals(-code).name}"
        if code > 0:
            return f"rank {rank}'s process failed (exit code {code}); the run's log has why"
    return None


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
