"""What per-layer gradient norms cost the loop: the digits CNN (and MLP) trained by trainboard's
loop with `layer_grad_norm/*` measured as it ships, against the same loop with the measurement
replaced by nothing, in one process, alternating, median of the repeats. At the default
`log_every_steps` (10) and at the worst case (1: every step). The epochs' difference is within
their noise, so the measurement is also timed alone (after a real backward of a digits batch),
and its share of an epoch computed from the steps an epoch logs. Prints `name: value unit` lines.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from trainboard.training import loop
from trainboard.training.layer_norms import LayerNorms
from trainboard.training.sinks import MemorySink
from trainboard.training.spec import RunSpec

EPOCHS, REPEATS = 10, 7


class NoLayerNorms:
    """The baseline: the loop as it was before per-layer norms."""

    def __init__(self, model: torch.nn.Module) -> None:
        pass

    def measure(self) -> None:
        return None

    def as_metrics(self, norms: None) -> dict[str, float]:
        return {}


def epoch_seconds(model: str, log_every: int, measured: bool) -> float:
    loop.LayerNorms = LayerNorms if measured else NoLayerNorms  # type: ignore[misc]
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"name": model},
            "epochs": EPOCHS,
            "batch_size": 64,
            "seed": 0,
            "device": "cpu",
            "log_every_steps": log_every,
            "checkpoint": {"every_epochs": 0},
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        loop.train(spec, run_dir=Path(folder), sink=MemorySink())
        return (time.perf_counter() - start) / EPOCHS


def measurement_share(model_name: str, epoch: float, log_every: int) -> float:
    """The measurement's time per epoch, timed alone, as a share of `epoch` seconds."""
    from trainboard.training.setup import build_setup

    spec = RunSpec.model_validate({"dataset": {"name": "digits"}, "model": {"name": model_name}})
    setup = build_setup(spec, device="cpu")
    xb, yb = next(setup.batches(spec))
    setup.loss_fn(setup.model(xb), yb).backward()
    norms = LayerNorms(setup.model)
    calls = 2000
    start = time.perf_counter()
    for _ in range(calls):
        norms.as_metrics(norms.measure())
    per_call = (time.perf_counter() - start) / calls
    steps = len(setup.batch_starts(len(setup.x_train), spec.batch_size))
    print(f"layer_norms_measure_{model_name}: {1e6 * per_call:.1f} us a logged step")
    return 100 * per_call * (steps / log_every) / epoch


def main() -> None:
    torch.set_num_threads(2)
    for model in ("cnn", "mlp"):
        for log_every in (10, 1):
            epoch_seconds(model, log_every, measured=True)  # warm-up
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(REPEATS):
                for measured in (False, True):
                    times[measured].append(epoch_seconds(model, log_every, measured))
            base, with_norms = statistics.median(times[False]), statistics.median(times[True])
            tag = f"{model}_log_every_{log_every}"
            print(f"epoch_without_layer_norms_{tag}: {1000 * base:.1f} ms")
            print(f"epoch_with_layer_norms_{tag}: {1000 * with_norms:.1f} ms")
            print(f"layer_norms_overhead_{tag}: {100 * (with_norms / base - 1):.2f} %")
            share = measurement_share(model, base, log_every)
            print(f"layer_norms_share_of_epoch_{tag}: {share:.3f} %")


if __name__ == "__main__":
    main()
