"""Files written together with a database row: staged first, published with the row, gone
with it when anything fails (a full disk included); and a folder's size, as runs record it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType

from trainboard.store.errors import raise_if_disk_full


class StagedFiles:
    """`add` writes each file to a temp file beside its place; `publish` renames them into
    place. Leaving the block with an error removes the temp files and any published file, so
    a failed upload leaves nothing behind. Use `publish` inside the row's transaction."""

    def __init__(self, folder: Path, what: str) -> None:
        self.folder, self.what = folder, what
        self.staged: list[tuple[Path, Path]] = []
        self.published: list[Path] = []

    def __enter__(self) -> StagedFiles:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, path: Path, content: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self.staged.append((Path(tmp), path))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise_if_disk_full(exc, self.what)
            raise

    def publish(self) -> None:
        for tmp, path in self.staged:
            os.replace(tmp, path)
            self.published.append(path)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        for tmp, _path in self.staged:
            tmp.unlink(missing_ok=True)
        if kind is not None:
            for path in self.published:
                path.unlink(missing_ok=True)


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # removed while we walked
                total += os.lstat(os.path.join(root, name)).st_size
    return total
