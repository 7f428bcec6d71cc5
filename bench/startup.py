"""Fixed costs of a run, against the tutorial's own script in the same session.

- start: wall time of a whole process that trains a 1-epoch digits MLP, `trainboard train
  SPEC.json` against the tutorial's plain script (imports, data, model, one epoch, a saved
  checkpoint); the gap is what trainboard adds before and around the first step.
- recording: CPU seconds the recording side (database, TensorBoard, checkpoint files) spends
  per epoch of a digits MLP that checkpoints every epoch, measured in the recording process
  as a worker runs it (reports arrive down a real channel), beside the tutorial's own
  recording (one torch.save of the same state each epoch) in the same session.

Prints `name: value unit` lines; each figure is a median of repeats (the start figures'
repeats alternate)."""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from multiprocessing.connection import Connection
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from trainboard.config import Settings
from trainboard.db import init_db, make_engine, session_scope
from trainboard.store import queue
from trainboard.store.runs import create_job_run
from trainboard.training.loop import train
from trainboard.training.spec import RunSpec
from trainboard.worker.channel import ChannelSink, Inbox, Recorder, open_channel, record
from trainboard.worker.child import torch_threads
from trainboard.worker.recording import LocalRecordings
from trainboard.worker.storesink import BATCH_SECONDS

REPEATS = 7
RECORDED_EPOCHS = 30
SPEC = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "params": {"hidden_sizes": [128], "dropout": 0.0}},
    "optimizer": {"name": "adam", "lr": 1e-3},
    "epochs": 1,
    "batch_size": 64,
    "seed": 0,
    "checkpoint": {"every_epochs": 1, "keep_last": 2, "keep_best": 1},
}
# The tutorial's loop as a learner writes it, on the same data, model and checkpoint.
TUTORIAL = textwrap.dedent(
    """
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.2, random_state=0)
    x_train, x_val = (torch.tensor(a, dtype=torch.float32) for a in (x_train, x_val))
    y_train, y_val = (torch.tensor(a) for a in (y_train, y_val))
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1):
        model.train()
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(x_val), y_val).item()
        print(f"epoch {epoch + 1}: train {loss.item():.4f} val {val_loss:.4f}")
        torch.save(
            {"epoch": epoch + 1, "model_state_dict": model.state_dict(),
             "optimizer_state_dict": optimizer.state_dict(), "loss": loss.item()},
            "checkpoint.pt",
        )
    """
)


def whole_process(command: list[str], cwd: Path) -> float:
    # Compiled modules cached, as they are after an install or a first run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def start_figures() -> None:
    trainboard = Path(sys.executable).with_name("trainboard")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "tutorial.py").write_text(TUTORIAL)
        (work / "spec.json").write_text(json.dumps(SPEC))
        tutorial = [sys.executable, "tutorial.py"]
        tracked = [str(trainboard), "train", "--home", str(work / "home"), "spec.json"]
        whole_process(tutorial, work)  # warm the page cache for both
        whole_process(tracked, work)
        times: dict[str, list[float]] = {"tutorial": [], "trainboard": []}
        for _ in range(REPEATS):
            times["tutorial"].append(whole_process(tutorial, work))
            times["trainboard"].append(whole_process(tracked, work))
    plain, ours = (statistics.median(times[k]) for k in ("tutorial", "trainboard"))
    print(f"start_tutorial_script: {plain:.3f} s")
    print(f"start_trainboard_train: {ours:.3f} s")
    print(f"start_gap: {ours - plain:.3f} s")


def recording_side(home: str, run_id: int, channel: Connection, cpu: multiprocessing.Queue) -> None:
    """A worker's recording side for one run; puts the CPU seconds it spent on `cpu`."""
    settings = Settings(home=Path(home))
    engine = make_engine(settings.resolved_database_url)
    recording = LocalRecordings(settings, engine, BATCH_SECONDS).open(run_id, 1, "cpu")
    recorder = Recorder(recording.sink, recording.checkpoints, recording.flush_due)
    cpu.put(None)  # ready
    started = time.process_time()
    record(Inbox(channel), recorder, tick=lambda: None, every=1.0, flush_every=BATCH_SECONDS)
    recording.release()
    cpu.put(time.process_time() - started)


def recording_cpu_per_epoch() -> float:
    spec = RunSpec.model_validate(SPEC | {"epochs": RECORDED_EPOCHS})
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(home=Path(folder))
        settings.ensure_dirs()
        engine = make_engine(settings.resolved_database_url)
        init_db(engine)
        with session_scope(engine) as session:
            run_id = create_job_run(session, spec=spec).id
            queue.claim_next_run(session, worker_id="bench", device="cpu", lease_seconds=3600)
        spawn = multiprocessing.get_context("spawn")
        read_fd, write_fd = open_channel()
        receiving, sending = (
            Connection(read_fd, writable=False),
            Connection(write_fd, readable=False),
        )
        cpu: multiprocessing.Queue = spawn.Queue()
        process = spawn.Process(target=recording_side, args=(folder, run_id, receiving, cpu))
        process.start()
        receiving.close()
        cpu.get()
        channel = ChannelSink(sending)
        torch.set_num_threads(torch_threads(0, "cpu"))  # as a worker's child sets them
        train(spec, run_dir=settings.run_dir(run_id), sink=channel, checkpoints=channel)
        sending.close()
        seconds = cpu.get()
        process.join()
        engine.dispose()
    return seconds / RECORDED_EPOCHS


def plain_save_cpu() -> float:
    """CPU seconds of the tutorial's own recording each epoch, in the same session: one
    torch.save of the same model and optimizer state to a file (the same-run baseline)."""
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(8, 64)).sum().backward()
    optimizer.step()  # Adam's state exists from the first step on
    state = {
        "epoch": 1,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": 0.5,
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        started = time.process_time()
        for _ in range(RECORDED_EPOCHS):
            torch.save(state, path)
        return (time.process_time() - started) / RECORDED_EPOCHS


def main() -> None:
    start_figures()
    per_epoch = statistics.median(recording_cpu_per_epoch() for _ in range(REPEATS))
    plain = statistics.median(plain_save_cpu() for _ in range(REPEATS))
    print(f"recording_cpu_per_epoch: {1000 * per_epoch:.2f} ms")
    print(f"plain_torch_save_cpu_per_epoch: {1000 * plain:.2f} ms")
    print(f"recording_vs_plain_save: {per_epoch / plain:.1f} x")


if __name__ == "__main__":
    main()
