"""The channel between a run's process and its recorder: exact tensors, and a run recorded
across a real pipe that equals one recorded in-process, down to an exact resume."""

from __future__ import annotations

import pickle
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import torch
from trainboard.training.checkpoint import CheckpointManager, load_checkpoint
from trainboard.training.exits import Exit, Failure, Outcome
from trainboard.training.loop import train
from trainboard.training.sinks import CheckpointFiles, MemorySink
from trainboard.training.spec import RunSpec
from trainboard.worker.channel import (
    ChannelSink,
    Inbox,
    Recorder,
    open_channel,
    pack,
    record,
)

from tests.test_training_loop import spec, without_timing


@pytest.mark.parametrize(
    "tensor",
    [
        torch.randn(3, 4),
        torch.randn(5, dtype=torch.float64),
        torch.randn(2, 3).to(torch.bfloat16),
        torch.randn(2, 3).half(),
        torch.tensor(7),
        torch.arange(12).reshape(3, 4).t(),  # not contiguous
        torch.tensor([True, False, True]),
        torch.empty(0, 3),
    ],
    ids=["f32", "f64", "bf16", "f16", "scalar", "transposed", "bool", "empty"],
)
def test_a_packed_tensor_comes_back_bit_for_bit(tensor: torch.Tensor) -> None:
    back = pickle.loads(pickle.dumps(pack({"t": [tensor, (tensor, 1)]})))
    for value in (back["t"][0], back["t"][1][0]):
        assert value.dtype == tensor.dtype and value.shape == tensor.shape
        assert torch.equal(value.view(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))
    assert back["t"][1][1] == 1


def test_packing_copies_so_later_training_steps_do_not_reach_a_sent_state() -> None:
    weights = torch.zeros(4)
    message = pickle.dumps(pack({"w": weights}))
    weights += 1  # the loop goes on training after sending
    assert torch.equal(pickle.loads(message)["w"], torch.zeros(4))


def memory_recorder(folder: Path, s: RunSpec) -> tuple[MemorySink, Recorder]:
    recorded = MemorySink()
    files = CheckpointFiles(CheckpointManager(folder, s.checkpoint), recorded)
    return recorded, Recorder(recorded, files)


class StoppingChannelSink(ChannelSink):
    """Asks the loop to stop once the checkpoint of `stop_after` is sent."""

    def __init__(self, connection: Connection, stop_after: int | None) -> None:
        super().__init__(connection)
        self.stop_after, self.sent_epoch = stop_after, 0

    def save(self, state: dict, *, epoch: int, metrics: dict[str, float]) -> None:
        super().save(state, epoch=epoch, metrics=metrics)
        self.sent_epoch = epoch

    def __call__(self) -> Exit | None:
        return Exit.interrupted if self.sent_epoch == self.stop_after else None


def record_across_a_pipe(
    s: RunSpec, run_dir: Path, stop_after: int | None = None
) -> tuple[Outcome | Failure | None, MemorySink]:
    """Train here, sending down a real pipe; record on a thread, as a worker's process does."""
    read_fd, write_fd = open_channel()
    sending = StoppingChannelSink(Connection(write_fd, readable=False), stop_after)
    recorded, recorder = memory_recorder(run_dir / "checkpoints", s)
    inbox = Inbox(Connection(read_fd, writable=False))
    recording = threading.Thread(
        target=record, args=(inbox, recorder), kwargs={"tick": lambda: None, "every": 60}
    )
    recording.start()
    train(s, run_dir=run_dir, sink=sending, checkpoints=sending, should_stop=sending)
    sending.connection.close()
    recording.join(timeout=60)
    assert not recording.is_alive()
    return recorder.end, recorded


def test_a_run_recorded_across_the_channel_equals_one_recorded_in_process(tmp_path: Path) -> None:
    s = spec(epochs=3, scheduler={"name": "cosine"})
    local = MemorySink()
    train(s, run_dir=tmp_path / "local", sink=local)
    end, remote = record_across_a_pipe(s, tmp_path / "remote")
    assert isinstance(end, Outcome) and end.exit.value == "completed" and end.epoch == 3
    assert without_timing(remote.epochs) == without_timing(local.epochs)
    assert remote.steps == local.steps
    assert [[e.name for e in kept] for kept in remote.checkpoints] == [
        [e.name for e in kept] for kept in local.checkpoints
    ]
    for name in ("epoch-0002.pt", "epoch-0003.pt"):
        here = load_checkpoint(tmp_path / "local" / "checkpoints" / name)
        there = load_checkpoint(tmp_path / "remote" / "checkpoints" / name)
        for part in ("model_state_dict", "optimizer_state_dict", "rng"):
            assert_same(there[part], here[part])


def assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)  # type: ignore[arg-type]
        for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
            assert_same(x, y)
    else:
        assert a == b


def test_resuming_from_a_checkpoint_that_crossed_the_channel_is_exact(tmp_path: Path) -> None:
    s = spec(epochs=4, optimizer={"name": "adamw", "lr": 0.003}, scheduler={"name": "cosine"})
    straight = MemorySink()
    train(s, run_dir=tmp_path / "straight", sink=straight)
    end, first = record_across_a_pipe(s, tmp_path / "resumed", stop_after=2)
    assert isinstance(end, Outcome) and end.exit is Exit.interrupted and end.epoch == 2
    rest = MemorySink()
    train(
        s,
        run_dir=tmp_path / "resumed",
        sink=rest,
        resume_from=tmp_path / "resumed" / "checkpoints" / "epoch-0002.pt",
    )
    assert without_timing(first.epochs + rest.epochs) == without_timing(straight.epochs)


def test_the_recorder_ends_with_the_channel_when_the_sender_dies(tmp_path: Path) -> None:
    read_fd, write_fd = open_channel()
    inbox = Inbox(Connection(read_fd, writable=False))
    sending = ChannelSink(Connection(write_fd, readable=False))
    sending.log_step(10, {"step/train_loss": 0.5})
    sending.connection.close()  # all a killed process leaves behind
    recorded, recorder = memory_recorder(tmp_path, spec())
    record(inbox, recorder, tick=lambda: None, every=60)
    assert recorded.steps == [(10, {"step/train_loss": 0.5})]  # what it sent is kept
    assert recorder.end is None  # and no end was made up for it


def test_a_quiet_channel_gets_what_is_due_flushed_between_beats(tmp_path: Path) -> None:
    read_fd, write_fd = open_channel()
    inbox = Inbox(Connection(read_fd, writable=False))
    sending = ChannelSink(Connection(write_fd, readable=False))
    flushes, ticks = threading.Event(), threading.Event()
    recorded = MemorySink()
    files = CheckpointFiles(CheckpointManager(tmp_path, spec().checkpoint), recorded)
    recorder = Recorder(recorded, files, flush=flushes.set)
    recording = threading.Thread(
        target=record,
        args=(inbox, recorder),
        kwargs={"tick": ticks.set, "every": 3600, "flush_every": 0.05},
    )
    recording.start()
    try:
        assert flushes.wait(timeout=30)  # though nothing was sent, and no beat came yet
        assert not ticks.is_set()
    finally:
        sending.connection.close()
        recording.join(timeout=30)
    assert not recording.is_alive()


def test_a_message_that_cannot_be_read_is_raised_not_taken_for_the_end() -> None:
    read_fd, write_fd = open_channel()
    inbox = Inbox(Connection(read_fd, writable=False))
    sending = Connection(write_fd, readable=False)
    sending.send_bytes(b"not a pickle")
    with pytest.raises(pickle.UnpicklingError):
        inbox.get(timeout=30)
    sending.close()
