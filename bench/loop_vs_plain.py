"""The seed's plain loop vs trainboard's loop with every sink on (and with sinks off).

Digits, MLP and a small CNN, batch 64, 20 epochs, same seed, 2 threads (then 1); runs alternate
in one process and each figure is the median of the repeats. Prints `name: value unit` lines.

With sinks on, the loop runs as a worker's run process does: it sends its reports down a
channel, and another process records them with the worker's own Recorder (database,
TensorBoard, checkpoint files). The time runs until that process has recorded the run's end.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from trainboard.config import Settings
from trainboard.db import init_db, make_engine, session_scope
from trainboard.store import queue
from trainboard.store.runs import create_job_run
from trainboard.training.data import prepare_data
from trainboard.training.loop import train
from trainboard.training.models import build_model
from trainboard.training.sinks import MemorySink
from trainboard.training.spec import RunSpec
from trainboard.worker.channel import ChannelSink, Inbox, Recorder, open_channel, record
from trainboard.worker.recording import LocalRecordings
from trainboard.worker.storesink import BATCH_SECONDS

EPOCHS, BATCH, REPEATS = 20, 64, 5


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


def recording_process(
    home: Path, run_id: int, channel: Connection, ready: Event, done: Event
) -> None:
    """What a worker does while its run trains: record the channel into the run's sinks."""
    settings = Settings(home=home)
    engine = make_engine(settings.resolved_database_url)
    recording = LocalRecordings(settings, engine, BATCH_SECONDS).open(run_id, 1, "cpu")
    recorder = Recorder(recording.sink, recording.checkpoints, recording.flush_due)
    ready.set()
    # As a worker does: a beat every second, a look at what is due to commit every batch.
    record(Inbox(channel), recorder, tick=lambda: None, every=1.0, flush_every=BATCH_SECONDS)
    recording.release()
    done.set()


def trainboard_loop(spec: RunSpec, device: str, tracked: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        if not tracked:
            untracked = spec.model_copy(
                update={"checkpoint": spec.checkpoint.model_copy(update={"every_epochs": 0})}
            )
            start = time.perf_counter()
            train(untracked, run_dir=home / "run", sink=MemorySink(), device=device)
            return time.perf_counter() - start
        settings = Settings(home=home)
        settings.ensure_dirs()
        engine = make_engine(settings.resolved_database_url)
        init_db(engine)
        with session_scope(engine) as session:
            run_id = create_job_run(session, spec=spec).id
            queue.claim_next_run(session, worker_id="bench", device=device, lease_seconds=3600)
        spawn = multiprocessing.get_context("spawn")
        read_fd, write_fd = open_channel()
        receiving = Connection(read_fd, writable=False)
        sending = Connection(write_fd, readable=False)
        ready, done = spawn.Event(), spawn.Event()
        recorder = spawn.Process(
            target=recording_process, args=(home, run_id, receiving, ready, done)
        )
        recorder.start()
        receiving.close()
        channel = ChannelSink(sending)
        ready.wait()  # a worker's recording side is up before its run starts
        start = time.perf_counter()
        train(spec, run_dir=settings.run_dir(run_id), sink=channel, checkpoints=channel)
        sending.close()
        done.wait()
        elapsed = time.perf_counter() - start
        recorder.join()
        engine.dispose()
        return elapsed


def main() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cores = os.cpu_count() or 1
    print(f"cpu_cores: {cores} cores")
    # 2 threads is the comparison asked for. On a 2-core machine it leaves no core to the
    # recording process; 1 thread shows the loop with a core to spare, as GPU machines have.
    for threads in (2, 1):
        torch.set_num_threads(threads)
        for device in devices:
            for model in ("mlp", "cnn"):
                spec = make_spec(model, device)
                trainboard_loop(spec, device, tracked=False)  # warm-up: imports, allocator
                times: dict[str, list[float]] = {"plain": [], "tracked": [], "untracked": []}
                for _ in range(REPEATS):
                    times["plain"].append(plain_loop(spec, device))
                    times["tracked"].append(trainboard_loop(spec, device, tracked=True))
                    times["untracked"].append(trainboard_loop(spec, device, tracked=False))
                plain, tracked, untracked = (
                    statistics.median(times[k]) for k in ("plain", "tracked", "untracked")
                )
                tag = f"{device}_{model}_{threads}threads"
                print(f"plain_loop_{tag}: {plain:.3f} s")
                print(f"trainboard_all_sinks_{tag}: {tracked:.3f} s")
                print(f"trainboard_no_sinks_{tag}: {untracked:.3f} s")
                print(f"ratio_plain_over_trainboard_{tag}: {plain / tracked:.2f} x")
                print(f"sinks_overhead_{tag}: {100 * (tracked / untracked - 1):.1f} %")


if __name__ == "__main__":
    main()
