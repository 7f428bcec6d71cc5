"""The two caches behind serving: export files by checkpoint sha256 and format, in the run's
folder (`runs/<id>/exports/`, deleted with the run), and loaded models by sha256, LRU-bounded.

An export is built once: it is written to a temporary file, checked against the eager model,
and only then renamed into place with its verification record beside it, so a file in the
cache is always a verified one. Exports are CPU-heavy (seconds for ONNX) and run one at a
time per process: a second request for the same file waits and then finds it."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import torch

from trainboard.config import Settings
from trainboard.serving.examples import validation_rows
from trainboard.serving.export import SUFFIXES, ExportProblem, Format, export_module
from trainboard.serving.graph import Servable, describe, encode, reference_outputs
from trainboard.serving.source import CheckpointRef, Loaded, load
from trainboard.serving.verify import verify
from trainboard.training.checkpoint import atomic_write

_EXPORTING = threading.Lock()
# Two rows at least, so that tracing keeps the batch dimension dynamic.
EXAMPLE_ROWS = 2


@dataclass
class ExportFile:
    """A verified export: its file, whether it came from the cache, and how it was checked."""

    path: Path
    cached: bool
    rows: int
    max_difference: float
    seconds: float


def export_paths(settings: Settings, ref: CheckpointRef, fmt: Format) -> tuple[Path, Path]:
    """The cached file of `ref` in `fmt`, and its verification record."""
    folder = settings.run_dir(ref.run_id) / "exports"
    return folder / f"{ref.sha256}{SUFFIXES[fmt]}", folder / f"{ref.sha256}.{fmt}.json"


def _read_cached(path: Path, record: Path) -> ExportFile | None:
    if not path.is_file() or not record.is_file():
        return None
    checked = json.loads(record.read_text())
    return ExportFile(path, True, checked["rows"], checked["max_difference"], checked["seconds"])


def exported(settings: Settings, ref: CheckpointRef, fmt: Format) -> ExportFile:
    """The verified export of `ref` in `fmt`, from the cache or built now; ExportProblem (or
    ValueError from rebuilding the model) saying why there is none."""
    path, record = export_paths(settings, ref, fmt)
    found = _read_cached(path, record)
    if found is not None:
        return found
    with _EXPORTING:
        found = _read_cached(path, record)  # built by the request this one waited for
        if found is not None:
            return found
        return _build(settings, ref, fmt, path, record)


def _build(
    settings: Settings, ref: CheckpointRef, fmt: Format, path: Path, record: Path
) -> ExportFile:
    started = time.perf_counter()
    loaded = load(ref, settings)
    rows = validation_rows(loaded.model, loaded.spec, uploads_dir=settings.uploads_dir)
    x = encode(loaded.model, rows)
    expected = reference_outputs(loaded.model, rows)
    if len(x) < EXAMPLE_ROWS:
        x, expected = x.repeat(EXAMPLE_ROWS, 1), expected.repeat(EXAMPLE_ROWS, 1)
    info = describe(loaded.model) | {
        "run_id": ref.run_id,
        "checkpoint": ref.name,
        "checkpoint_sha256": ref.sha256,
        "format": fmt,
        "torch": torch.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # The suffix stays the format's: torch.export.load reads only files ending in .pt2.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=f".tmp{SUFFIXES[fmt]}")
    os.close(fd)
    temporary = Path(name)
    try:
        export_module(fmt, Servable(loaded.model), x[:EXAMPLE_ROWS], temporary, info)
        worst = verify(fmt, temporary, x, expected)
        seconds = time.perf_counter() - started
        checked = {"rows": len(x), "max_difference": worst, "seconds": round(seconds, 3)}
        body = json.dumps(checked).encode()
        atomic_write(record, lambda handle: handle.write(body), durable=False)
        os.replace(temporary, path)  # last: a file in the cache has its record
    finally:
        temporary.unlink(missing_ok=True)
    return ExportFile(path, False, len(x), worst, seconds)


K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `size` values, the least recently used evicted first; thread-safe. A value is
    built outside the lock (loading a model takes milliseconds to seconds), so two threads
    may build the same one at once; the first stored wins."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = build()
        with self._lock:
            value = self._items.setdefault(key, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._items)


def model_cache(size: int) -> LRU[str, Loaded]:
    """Loaded checkpoints by sha256: a file's bytes fix its model."""
    return LRU(size)


__all__ = ["LRU", "ExportFile", "ExportProblem", "exported", "model_cache"]
