"""One run on several devices: the thin layer the shared loop trains through.

The loop asks its `Ranks` five things, and on one device each is a no-op (`ONE_DEVICE`):

    wrap    the model for training: DistributedDataParallel, which averages gradients
    shard   this rank's part of a batch of the (seed, epoch) order (or of the validation
            split): the global batch stays `batch_size`, split in contiguous pieces
    weigh   the local loss before backward, so that averaging gradients over uneven pieces
            gives the gradient of the global batch's mean loss
    sum_    epoch sums (losses, correct counts, validation totals) over every rank, in place
    mean_   the logged steps' losses, so that every rank judges divergence on the same numbers
    agree   one stop decision for all ranks after every step (and one early stop after each
            epoch): a cancel seen by rank 0 alone must not leave the others in a collective
    gather  every rank's random state into the checkpoint, for an exact resume with dropout

Only rank 0 reports and writes checkpoints; the model it saves is the bare one (no `module.`
prefix). `worker.ranks` starts the processes and the process group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from trainboard.training.exits import Exit

# The order in which stop reasons win when ranks disagree: a cancel beats a requeue, which beats
# an early stop.
_STOPS: tuple[Exit | None, ...] = (None, Exit.early_stopped, Exit.interrupted, Exit.cancelled)


class Ranks(Protocol):
    rank: int
    world: int

    def wrap(self, model: nn.Module) -> nn.Module: ...
    def shard(self, rows: torch.Tensor) -> torch.Tensor: ...
    def weigh(self, loss: torch.Tensor, mine: int, total: int) -> torch.Tensor: ...
    def sum_(self, *tensors: torch.Tensor) -> None: ...
    def mean_(self, tensor: torch.Tensor) -> None: ...
    def agree(self, stop: Exit | None) -> Exit | None: ...
    def gather(self, value: Any) -> list[Any]: ...


class OneDevice:
    """The loop on one device: nothing to split, reduce or agree on."""

    rank = 0
    world = 1

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        return rows

    def weigh(self, loss: torch.Tensor, mine: int, total: int) -> torch.Tensor:
        return loss

    def sum_(self, *tensors: torch.Tensor) -> None:
        return None

    def mean_(self, tensor: torch.Tensor) -> None:
        return None

    def agree(self, stop: Exit | None) -> Exit | None:
        return stop

    def gather(self, value: Any) -> list[Any]:
        return [value]


ONE_DEVICE = OneDevice()


@dataclass
class ProcessGroup:
    """This process's place in an initialised default process group (gloo or NCCL)."""

    rank: int
    world: int
    device: torch.device
    # Stop decisions go through gloo on CPU tensors: on NCCL a per-step read of a GPU tensor
    # would wait for the step's kernels.
    control: object | None = None

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.tensor_split(rows, self.world)[self.rank]

    def weigh(self, loss: torch.Tensor, mine: int, total: int) -> torch.Tensor:
        # DDP averages gradients over ranks: each local mean weighs its share of the batch.
        return loss * (mine * self.world / total)

    def sum_(self, *tensors: torch.Tensor) -> None:
        import torch.distributed as dist

        for tensor in tensors:  # a long and a float cannot share one buffer
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def mean_(self, tensor: torch.Tensor) -> None:
        self.sum_(tensor)
        tensor.div_(self.world)

    def agree(self, stop: Exit | None) -> Exit | None:
        import torch.distributed as dist

        code = torch.tensor([_STOPS.index(stop)])
        dist.all_reduce(code, op=dist.ReduceOp.MAX, group=self.control)
        return _STOPS[int(code.item())]

    def gather(self, value: Any) -> list[Any]:
        """`value` of every rank, in rank order (pickled, through the CPU group)."""
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value, group=self.control)
        return values
