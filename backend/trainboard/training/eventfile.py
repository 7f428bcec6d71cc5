"""A TensorBoard event file, written synchronously and checksummed in C.

TensorBoard's own writer hands every event to a thread through a queue of ten, and without
TensorFlow it computes each record's masked CRC-32C in pure Python: together about 60 µs of CPU
for a scalar, the largest share of what recording a run costs. A worker records in a process
of its own, off the training path, where the thread buys nothing; `trainboard train` records
on its training thread, where those 60 µs would be taken from training. This writes the same
records (TensorBoard's protos, TFRecord framing) with one buffered write each, a step's
scalars together in one event as a merged summary holds them; TensorBoard and `tensorboard
--logdir` read it as their own."""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import google_crc32c
import torch
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import histogram, hparams

CRC_MASK_DELTA = 0xA282EAD8  # TFRecord's mask: rotate right by 15 bits, then add this


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C of `data`, as TFRecord files store it."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + CRC_MASK_DELTA) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """`data` framed as a TFRecord: length, its checksum, the data, its checksum."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


class EventFile:
    """One `events.out.tfevents.*` file in `logdir`, named as TensorBoard names its own."""

    def __init__(self, logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        self.path = logdir / name
        self.file = self.path.open("ab")
        self.add(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def add(self, event: Event) -> None:
        self.file.write(record(event.SerializeToString()))

    def add_summary(self, summary: Summary, step: int | None = None) -> None:
        event = Event(wall_time=time.time(), summary=summary)
        if step is not None:
            event.step = step
        self.add(event)

    def add_scalars(self, values: Mapping[str, float], step: int) -> None:
        """The scalars of one step, in one event."""
        tags = [Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()]
        if tags:
            self.add_summary(Summary(value=tags), step)

    def add_histogram(self, tag: str, values: torch.Tensor, step: int, bins: int) -> None:
        self.add_summary(histogram(tag, values, bins=bins), step)

    def add_hparams(self, params: dict[str, Any], metrics: dict[str, float]) -> None:
        """The HParams dashboard's session: the run's params and its final metrics."""
        for summary in hparams(params, metrics):
            self.add_summary(summary)

    def flush(self) -> None:
        """Hand what is buffered to the operating system, where TensorBoard can read it."""
        if not self.file.closed:
            self.file.flush()

    def close(self) -> None:
        """Flush and close; closing twice is harmless."""
        self.file.close()
