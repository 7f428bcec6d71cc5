"""What every pass over a spec starts from: seeded data, model, loss, optimizer and precision
on the run's device. The loop, the LR range test and the one-batch preflight all build it here,
so a check sees exactly the model and optimizer the run would train."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainboard.training.data import DataBundle, RawData, prepare_data
from trainboard.training.models import build_loss, build_model
from trainboard.training.optim import build_optimizer
from trainboard.training.runtime import Precision, epoch_order, resolve_device, seed_everything
from trainboard.training.spec import RunSpec


@dataclass
class Setup:
    """A spec made concrete: its data (the splits on the device), model, loss and optimizer."""

    device: torch.device
    data: DataBundle
    model: nn.Module
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    precision: Precision
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def classify(self) -> bool:
        return self.data.info.task == "classification"

    def batch_starts(self, n_train: int, batch_size: int, world: int = 1) -> list[int]:
        """The first index of each batch of an epoch. A trailing batch of one sample is
        dropped (BatchNorm cannot train on it), and on `world` devices one too small to give
        each of them two."""
        smallest = 2 * world
        return [s for s in range(0, n_train, batch_size) if n_train - s >= smallest or s == 0]

    def batches(self, spec: RunSpec) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Training batches in the loop's (seed, epoch) order, epoch after epoch, forever."""
        n_train = len(self.x_train)
        starts = self.batch_starts(n_train, spec.batch_size)
        epoch = 0
        while True:
            epoch += 1
            order = epoch_order(n_train, spec.seed, epoch, self.device)
            for start in starts:
                idx = order[start : start + spec.batch_size]
                yield self.x_train[idx], self.y_train[idx]


def build_setup(
    spec: RunSpec,
    *,
    uploads_dir: Path | None = None,
    raw_data: RawData | None = None,
    device: str | None = None,
    max_parameters: int | None = None,
    rank: int | None = None,
) -> Setup:
    """Seed, then load the data, build the model and its optimizer, in the order every pass
    of the same spec repeats (so the same seed gives the same initial weights). `rank`: this
    process's place among the run's devices; on CUDA it trains on GPU `rank`."""
    dev = resolve_device(device if device and spec.device == "auto" else spec.device)
    if rank is not None and dev.type == "cuda":
        dev = torch.device("cuda", rank)
        torch.cuda.set_device(dev)
    seed_everything(spec.seed, spec.deterministic)
    data = prepare_data(spec.dataset, seed=spec.seed, uploads_dir=uploads_dir, raw=raw_data)
    model = build_model(spec.model, data.info, max_parameters=max_parameters).to(dev)
    pin = dev.type == "cuda"
    x_train, y_train, x_val, y_val = (
        (t.pin_memory() if pin else t).to(dev, non_blocking=True)
        for t in (data.x_train, data.y_train, data.x_val, data.y_val)
    )
    return Setup(
        device=dev,
        data=data,
        model=model,
        loss_fn=build_loss(data.info.task, spec.loss),
        optimizer=build_optimizer(model, spec.optimizer),
        precision=Precision.resolve(spec.amp, dev),
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
    )
