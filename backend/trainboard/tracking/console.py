"""Console capture: what the script prints still goes to the terminal, and to the run's log."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any, TextIO


class Tee:
    """A text stream that writes through to `stream` and keeps a copy of what was written."""

    def __init__(self, stream: TextIO, lines: deque[str]) -> None:
        self.stream, self.lines = stream, lines

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        if text:
            self.lines.append(text)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class Console:
    """Tee sys.stdout and sys.stderr into `lines` until `close`."""

    def __init__(self, lines: deque[str]) -> None:
        self.stdout, self.stderr = sys.stdout, sys.stderr
        sys.stdout = Tee(sys.stdout, lines)  # type: ignore[assignment]
        sys.stderr = Tee(sys.stderr, lines)  # type: ignore[assignment]

    def close(self) -> None:
        # Only undone if nobody replaced them since: never clobber another tool's wrapper.
        if isinstance(sys.stdout, Tee):
            sys.stdout = self.stdout
        if isinstance(sys.stderr, Tee):
            sys.stderr = self.stderr
