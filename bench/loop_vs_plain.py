"""The seed's plain loop vs trainboard's loop with every sink on (and with sinks off).

Digits, MLP and a small CNN, batch 64, 20 epochs, same seed, 2 threads; runs alternate in one
process and each figure is the median of the repeats. Prints `name: value unit` lines.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from trainboard.db import init_db, make_engine, session_scope
from trainboard.execution import StoreSink
from trainboard.store import queue
from trainboard.store.runs import create_job_run
from trainboard.training.data import prepare_data
from trainboard.training.loop import train
from trainboard.training.models import build_model
from trainboard.training.sinks import FanOut, MemorySink, TensorBoardSink
from trainboard.training.spec import RunSpec

EPOCHS, BATCH, REPEATS = 20, 64, 3


def make_spec(model: str, device: str) -> RunSpec:
    return RunSpec.model_validate(
        {
            "dataset": {"name": "digits"},
            "model": {"name": model},
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "grad_clip_norm": None,
            "seed": 0,
            "device": device,
            "log_every_steps": 10,
            "checkpoint": {"every_epochs": 1, "keep_last": 2, "keep_best": 1},
        }
    )


def plain_loop(spec: RunSpec, device: str) -> float:
    """The seed's loop as the seed writes it: DataLoader, loss.item() every step, no tracking."""
    torch.manual_seed(spec.seed)
    data = prepare_data(spec.dataset, seed=spec.seed)
    model = build_model(spec.model, data.info)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    train_loader = DataLoader(
        TensorDataset(data.x_train, data.y_train), batch_size=BATCH, shuffle=True
    )
    val_loader = DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=BATCH)
    start = time.perf_counter()
    model.to(device)
    for _epoch in range(EPOCHS):
        model.train()
        train_loss = 0.0
        for x_batch, y_batch in train_loader:
            x_batch, y_batch = x_batch.to(device), y_batch.to(device)
            optimizer.zero_grad()
            outputs = model(x_batch)
            loss = loss_fn(outputs, y_batch)
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * x_batch.size(0)
        train_loss /= len(train_loader.dataset)
        model.eval()
        val_loss = 0.0
        with torch.no_grad():
            for x_val, y_val in val_loader:
                x_val, y_val = x_val.to(device), y_val.to(device)
                val_loss += loss_fn(model(x_val), y_val).item() * x_val.size(0)
        val_loss /= len(val_loader.dataset)
    return time.perf_counter() - start


def trainboard_loop(spec: RunSpec, device: str, tracked: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        if tracked:
            engine = make_engine(f"sqlite:///{home / 'trainboard.db'}")
            init_db(engine)
            with session_scope(engine) as session:
                run_id = create_job_run(session, spec=spec).id
                queue.claim_next_run(session, worker_id="bench", device=device, lease_seconds=3600)
            store = StoreSink(engine, run_id, 1)
            sink = FanOut(store, TensorBoardSink(home / "tensorboard", {"model": spec.model.name}))
            run_spec = spec
        else:
            sink = MemorySink()
            run_spec = spec.model_copy(
                update={"checkpoint": spec.checkpoint.model_copy(update={"every_epochs": 0})}
            )
        start = time.perf_counter()
        train(run_spec, run_dir=home / "run", sink=sink, device=device)
        return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for model in ("mlp", "cnn"):
            spec = make_spec(model, device)
            trainboard_loop(spec, device, tracked=False)  # warm-up: imports, allocator, kernels
            times: dict[str, list[float]] = {"plain": [], "tracked": [], "untracked": []}
            for _ in range(REPEATS):
                times["plain"].append(plain_loop(spec, device))
                times["tracked"].append(trainboard_loop(spec, device, tracked=True))
                times["untracked"].append(trainboard_loop(spec, device, tracked=False))
            plain, tracked, untracked = (
                statistics.median(times[k]) for k in ("plain", "tracked", "untracked")
            )
            tag = f"{device}_{model}"
            print(f"plain_loop_{tag}: {plain:.3f} s")
            print(f"trainboard_all_sinks_{tag}: {tracked:.3f} s")
            print(f"trainboard_no_sinks_{tag}: {untracked:.3f} s")
            print(f"ratio_plain_over_trainboard_{tag}: {plain / tracked:.2f} x")
            print(f"sinks_overhead_{tag}: {100 * (tracked / untracked - 1):.1f} %")


if __name__ == "__main__":
    main()
