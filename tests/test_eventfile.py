"""Event files written by trainboard read back with TensorBoard's own reader, checksums and all."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference
from trainboard.training.eventfile import EventFile, masked_crc32c


@pytest.mark.parametrize("size", [0, 1, 8, 12, 100, 4096])
def test_the_checksum_is_tensorboards(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert masked_crc32c(data) == reference(data)


def test_tensorboard_reads_every_event_back(tmp_path: Path) -> None:
    events = EventFile(tmp_path)
    for step in range(1, 4):
        events.add_scalars({"val_loss": 1.0 / step, "lr": 0.1 * step}, step)
    events.add_scalars({}, 4)  # nothing to write: no event
    events.add_histogram("weights/w", torch.arange(10.0), 3, bins=4)
    events.close()
    events.close()  # twice is harmless
    [path] = tmp_path.glob("events.out.tfevents.*")
    # The file's version, a step's scalars in one event each, the histogram; nothing for {}.
    assert len(list(EventFileLoader(str(path)).Load())) == 1 + 3 + 1
    # The reader checks each record's checksums and stops at the first bad one.
    read = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0})
    read.Reload()
    assert [(s.step, s.value) for s in read.Scalars("val_loss")] == [
        (1, 1.0),
        (2, 0.5),
        (3, pytest.approx(1 / 3)),
    ]
    # Scalars that share an event are each their own series.
    assert [(s.step, s.value) for s in read.Scalars("lr")] == [
        (1, pytest.approx(0.1)),
        (2, pytest.approx(0.2)),
        (3, pytest.approx(0.3)),
    ]
    [weights] = read.Histograms("weights/w")
    assert (weights.step, weights.histogram_value.num) == (3, 10)
