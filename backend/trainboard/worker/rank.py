"""Ranks 1..N-1 of a run on several devices (`worker.ranks` starts them): each trains the same
job through the shared loop, on its piece of every batch, and reports nothing."""

from __future__ import annotations

import sys

from trainboard.lifetime import follow_parent


def main() -> int:
    """Ranks 1..N-1: `python -m trainboard.worker.rank RANK PORT THREADS`, the job on stdin.
    They report nothing and keep no checkpoints; a stop comes from rank 0 through the loop."""
    follow_parent()
    rank, port, threads = (int(arg) for arg in sys.argv[1:4])
    import torch

    from trainboard.training.sinks import NullSink
    from trainboard.training.spec import RunSpec
    from trainboard.worker.job import Job, training_of
    from trainboard.worker.ranks import join_group, rendezvous

    job = Job.from_line(sys.stdin.readline())
    torch.set_num_threads(threads)
    store = rendezvous(port, leader=False, world=job.devices)
    group = join_group(rank, job.devices, store, cuda=job.on_cuda)
    nothing = NullSink()
    try:
        training_of(job, RunSpec.model_validate(job.spec), sink=nothing, checkpoints=nothing)(
            ranks=group
        )
    finally:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
