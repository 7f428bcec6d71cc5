"""A run's spool: what the client could not send yet, on disk, to be sent later.

One folder per run (under `$TRAINBOARD_SPOOL_DIR`, default `~/.trainboard/spool`):

    run.json      the create request, the server URL, and per server URL what was sent
                  (run id, bytes of points.jsonl, whether the finish went); written atomically
    points.jsonl  append-only, a JSON array of up to LINE_POINTS [key, step, value, timestamp]
                  points a line

Sending again is always safe: the server replaces a (key, step), so a point sent twice is
stored once. A torn last line (the process died mid-write) is left unread.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

Point = tuple[str, int, float | None, float]  # key, step, value (None: NaN/inf), timestamp
LINE_POINTS = 1000  # points a line at most: a replay reads whole lines, a request's worth
FSYNC_SECONDS = 1.0  # at most one fsync a second: a crash loses under a second of spool
DEFAULT_ROOT = Path("~/.trainboard/spool")


P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[Spool, P], R]) -> Callable[Concatenate[Spool, P], R]:
    """One thread at a time in the spool's files: the sender, or a `flush` spooling for it."""

    @functools.wraps(method)
    def locked(self: Spool, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            return method(self, *args, **kwargs)

    return locked


def spool_root() -> Path:
    """Where spools are written: `$TRAINBOARD_SPOOL_DIR`, else `~/.trainboard/spool`."""
    return Path(os.environ.get("TRAINBOARD_SPOOL_DIR") or DEFAULT_ROOT).expanduser()


def new_folder_name() -> str:
    """A name that sorts by time and never collides: `20261130-004512-1234-9f3a`."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(2)}"


class Spool:
    """One run's spool folder; created on first write, so a run that sent everything has none."""

    def __init__(self, folder: Path, *, url: str, create: dict[str, Any]) -> None:
        self.folder, self.url = folder, url
        self.meta: dict[str, Any] = {"version": 1, "url": url, "create": create, "uploads": {}}
        self.handle: Any = None
        self.lock = threading.RLock()
        self.last_fsync = 0.0
        self.size = 0

    @classmethod
    def open(cls, folder: Path) -> Spool:
        """An existing spool, as `trainboard sync` reads it."""
        meta = json.loads((folder / "run.json").read_text())
        spool = cls(folder, url=meta["url"], create=meta["create"])
        spool.meta = meta
        points = folder / "points.jsonl"
        spool.size = points.stat().st_size if points.exists() else 0
        return spool

    @property
    def exists(self) -> bool:
        return (self.folder / "run.json").exists()

    def upload(self, url: str) -> dict[str, Any]:
        """What was sent to the server at `url`: run_id, sent_bytes, finished."""
        return self.meta["uploads"].setdefault(
            url.rstrip("/"), {"run_id": None, "sent_bytes": 0, "finished": False}
        )

    @_locked
    def save(self) -> None:
        """Write run.json atomically (temporary file, fsync, rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / "run.json.tmp"
        with temporary.open("w") as handle:
            json.dump(self.meta, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.folder / "run.json")

    @_locked
    def append(self, points: list[Point]) -> None:
        """Append a batch; fsynced when the last fsync is over FSYNC_SECONDS old."""
        if not points:
            return
        if self.handle is None:
            if not self.exists:
                self.save()
            self.handle = (self.folder / "points.jsonl").open("ab")
        for start in range(0, len(points), LINE_POINTS):
            chunk = points[start : start + LINE_POINTS]
            line = json.dumps([list(p) for p in chunk], separators=(",", ":")).encode() + b"\n"
            self.handle.write(line)
            self.size += len(line)
        if time.monotonic() - self.last_fsync >= FSYNC_SECONDS:
            self.sync()

    @_locked
    def sync(self) -> None:
        if self.handle is not None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.last_fsync = time.monotonic()

    @_locked
    def unsent(self, url: str, limit: int) -> tuple[list[Point], int]:
        """Up to about `limit` points not yet sent to `url`, and the byte offset after them."""
        start = self.upload(url)["sent_bytes"]
        if self.handle is not None:
            self.handle.flush()
        points: list[Point] = []
        offset = start
        path = self.folder / "points.jsonl"
        if not path.exists():
            return points, offset
        with path.open("rb") as handle:
            handle.seek(start)
            for line in handle:
                if not line.endswith(b"\n") or len(points) >= limit:
                    break  # a torn last line, or enough for one request
                points.extend(tuple(p) for p in json.loads(line))  # type: ignore[misc]
                offset += len(line)
        return points, offset

    @_locked
    def pending(self, url: str) -> int:
        """How many points in the spool were not sent to `url`."""
        start = self.upload(url)["sent_bytes"]
        path = self.folder / "points.jsonl"
        if self.handle is not None:
            self.handle.flush()
        if not path.exists():
            return 0
        count = 0
        with path.open("rb") as handle:
            handle.seek(start)
            for line in handle:
                if line.endswith(b"\n"):
                    count += len(json.loads(line))
        return count

    @_locked
    def close(self) -> None:
        if self.handle is not None:
            self.sync()
            self.handle.close()
            self.handle = None


def spool_folders(path: Path) -> list[Path]:
    """`path` if it is one run's spool, else the run spools directly inside it, oldest first."""
    if (path / "run.json").is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if (p / "run.json").is_file())
