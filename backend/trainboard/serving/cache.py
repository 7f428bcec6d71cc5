"""The two caches behind serving: export files by checkpoint sha256 and format, in the run's
folder (`runs/<id>/exports/`, deleted with the run), and loaded models by sha256, LRU-bounded.

An export is built once: it is written to a temporary file, checked against the eager model,
and only then renamed into place with its verification record beside it, so a file in the
cache is always a verified one. Exports are CPU-heavy (seconds for ONNX) and run one at a
time per process: a second request for the same file waits and then finds it."""

from __future__ import annotations

import hashlib
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
from trainboard.serving.source import SHA256, CheckpointRef, Loaded, load, phrase
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
    """The cached export, if both files are there and the record reads and matches the file
    (its size); None, a miss to rebuild, for anything else (a torn or foreign record)."""
    try:
        checked = json.loads(record.read_text())
        size = path.stat().st_size
        found = ExportFile(
            path,
            True,
            int(checked["rows"]),
            float(checked["max_difference"]),
            float(checked["seconds"]),
        )
        matches = checked["size"] == size and bool(SHA256.match(str(checked["sha256"])))
    except (OSError, ValueError, KeyError, TypeError):  # absent, torn, not ours
        return None
    return found if matches else None


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
    try:
        rows = validation_rows(loaded.model, loaded.spec, uploads_dir=settings.uploads_dir)
        x = encode(loaded.model, rows)
        expected = reference_outputs(loaded.model, rows)
    except Exception as exc:  # a plugin's forward that fails, preprocessing that lacks a key
        raise ExportProblem(f"the model fails on its own example rows: {phrase(exc)}") from exc
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
        size, digest = _sync_and_hash(temporary)
        checked = {
            "rows": len(x),
            "max_difference": worst,
            "seconds": round(seconds, 3),
            "size": size,
            "sha256": digest,
        }
        body = json.dumps(checked).encode()
        atomic_write(record, lambda tmp: tmp.write_bytes(body))  # fsynced, then renamed
        os.replace(temporary, path)  # last: a file in the cache has its record
        _sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportFile(path, False, len(x), worst, seconds)


def _sync_and_hash(path: Path) -> tuple[int, str]:
    """Flush `path` to the disk (before it is renamed into the cache); its size and sha256."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        os.fsync(handle.fileno())
        return handle.tell(), digest.hexdigest()


def _sync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
