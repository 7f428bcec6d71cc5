"""Checkpoint files: atomic writes, retention by recency and by the monitored metric, safe loads."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import InitVar, asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainboard.training.spec import CheckpointSpec


@dataclass
class CheckpointEntry:
    name: str  # "epoch-0003": the id clients use; the file is <name>.pt
    epoch: int
    size_bytes: int
    sha256: str
    metrics: dict[str, float | None]
    is_best: bool = False
    created_at: float = 0.0


def checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def atomic_write(
    path: Path, write: Callable[[Path], object], *, durable: bool = True, overwrite: bool = True
) -> None:
    """Write a temp file beside `path` through `write(temp_path)`, then rename it over `path`:
    a crash leaves either the old file or the new one, never half of one. `durable` also
    fsyncs, so the new file survives a power loss, at a few milliseconds a call. Without
    `overwrite`, an existing `path` raises FileExistsError and stays as it was. On any error
    (a full disk included) nothing is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if durable:
            _fsync(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if `path` exists, where a rename would replace it
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)  # make the rename itself durable


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: Path | str, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's dict, loaded with weights_only=True; a clear error for a bad file."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{Path(path).name} is not a readable trainboard checkpoint: {exc}"
        ) from None
    if not isinstance(state, dict) or "model_state_dict" not in state:
        raise ValueError(f"{Path(path).name} is not a trainboard checkpoint (no model_state_dict)")
    return state


@dataclass
class CheckpointManager:
    """Saves `epoch-NNNN.pt` files in `folder`; keeps the last `keep_last`, the best `keep_best`.

    `known` are the checkpoints there already, as the database lists them; without it, the
    manager keeps its list in the folder's index.json.

    With `deferred`, the database's rows are the truth and the files follow their commits:
    a save neither fsyncs nor deletes. `make_durable()` fsyncs the new files and the folder
    once, just before the rows that list them commit (one fsync per kept file and one per
    folder a commit, instead of two per save), and `delete_forgotten()` removes what
    retention dropped once the rows without it have committed. So a reader of the rows never
    finds a row whose file was deleted, or lost to a power cut."""

    folder: Path
    policy: CheckpointSpec
    known: InitVar[list[CheckpointEntry] | None] = None
    deferred: bool = False
    entries: list[CheckpointEntry] = field(init=False)
    forgotten: set[str] = field(init=False, default_factory=set)
    unsynced: set[str] = field(init=False, default_factory=set)
    indexed: bool = field(init=False)

    def __post_init__(self, known: list[CheckpointEntry] | None) -> None:
        self.indexed = known is None
        self.entries = self._read_index() if known is None else list(known)

    def _read_index(self) -> list[CheckpointEntry]:
        index = self.folder / "index.json"
        if not index.exists():
            return []
        listed = [CheckpointEntry(**e) for e in json.loads(index.read_text())]
        return [e for e in listed if (self.folder / f"{e.name}.pt").exists()]

    def _score(self, entry: CheckpointEntry) -> float:
        value = entry.metrics.get(self.policy.monitor)
        if value is None or not math.isfinite(value):
            return math.inf  # a NaN or missing metric is never best
        return value if self.policy.mode == "min" else -value

    def save(
        self, state: dict[str, Any], *, epoch: int, metrics: dict[str, float | None]
    ) -> list[CheckpointEntry]:
        """Write the checkpoint of `epoch`, apply retention, and return the entries kept."""
        name = checkpoint_name(epoch)
        path = self.folder / f"{name}.pt"
        # To a path, torch writes in C++; to a Python file object, it calls back into Python
        # for every record. Hashing the file just written reads it from the page cache.
        # A deferred save leaves the fsync to make_durable, unless it replaces a file that a
        # committed row may list already.
        durable = not self.deferred or path.exists()
        atomic_write(path, lambda tmp: torch.save(state, tmp), durable=durable)
        if not durable:
            self.unsynced.add(name)
        with path.open("rb") as written:
            digest = hashlib.file_digest(written, "sha256").hexdigest()
        stat = path.stat()
        entry = CheckpointEntry(
            name, epoch, stat.st_size, digest, dict(metrics), created_at=stat.st_mtime
        )
        # Saving an earlier epoch again starts another history: the later files go.
        self.forgotten |= {e.name for e in self.entries if e.epoch > epoch}
        self.entries = [e for e in self.entries if e.epoch < epoch] + [entry]
        self._retain()
        return list(self.entries)

    def _retain(self) -> None:
        by_epoch = sorted(self.entries, key=lambda e: e.epoch)
        ranked = sorted((e for e in by_epoch if math.isfinite(self._score(e))), key=self._score)
        best = ranked[: self.policy.keep_best]
        keep = {e.name for e in by_epoch[-self.policy.keep_last :]} | {e.name for e in best}
        for entry in by_epoch:
            entry.is_best = bool(best) and entry.name == best[0].name
        self.forgotten = (self.forgotten | {e.name for e in by_epoch}) - keep
        if not self.deferred:
            self.delete_forgotten()
        self.entries = [e for e in by_epoch if e.name in keep]
        if not self.indexed:
            return
        index = json.dumps([asdict(e) for e in self.entries], indent=1).encode()
        # The index is a cache of what the files hold: atomic, but no fsync needed.
        atomic_write(self.folder / "index.json", lambda tmp: tmp.write_bytes(index), durable=False)

    def make_durable(self) -> None:
        """fsync the files saved since the last call that retention still keeps, then the
        folder and the folder's own entry, so they and their names survive a power cut. If an
        fsync fails, those files are forgotten and the error raised: Linux reports a lost
        write once, so an fsync tried again would pass for a file that is not on the disk."""
        kept, self.unsynced = self.unsynced - self.forgotten, set()
        if not kept:
            return
        try:
            for name in kept:
                _fsync(self.folder / f"{name}.pt")
            _fsync(self.folder)
            _fsync(self.folder.parent)
        except OSError:
            self.entries = [e for e in self.entries if e.name not in kept]
            self.forgotten |= kept
            raise

    def forgotten_bytes(self) -> int:
        """The bytes of the files retention forgot and `delete_forgotten` will remove."""
        total = 0
        for name in self.forgotten:
            with contextlib.suppress(OSError):
                total += (self.folder / f"{name}.pt").stat().st_size
        return total

    def delete_forgotten(self) -> None:
        """Delete the files that retention no longer keeps."""
        for name in self.forgotten:
            (self.folder / f"{name}.pt").unlink(missing_ok=True)
        self.forgotten = set()

    def latest_path(self) -> Path | None:
        if not self.entries:
            return None
        return self.folder / f"{max(self.entries, key=lambda e: e.epoch).name}.pt"
