"""How the process ends, for runs that were never finished: an uncaught exception or a
non-zero `sys.exit` ends them `failed`, a normal exit `completed` (at atexit)."""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol


class Finishable(Protocol):
    def finish(self, status: str = "completed", error: str | None = None) -> None: ...


_runs: list[Finishable] = []  # held until exit: a run dropped unfinished is still ended
_exit: dict[str, Any] = {"error": None}
_lock = threading.Lock()
_installed = False


def track(run: Finishable) -> None:
    """Finish `run` at exit if nothing else did, as the exit says."""
    global _installed
    with _lock:
        _runs.append(run)
        if _installed:
            return
        _installed = True
    original_hook: Callable[..., Any] = sys.excepthook
    original_exit: Callable[..., Any] = sys.exit

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        _exit["error"] = f"{kind.__name__}: {value}"
        original_hook(kind, value, tb)

    def exit_(code: Any = None) -> None:
        # SystemExit never reaches the excepthook: its code is noted here on the way out.
        if code not in (None, 0):
            _exit["error"] = f"the script exited with {code!r}"
        original_exit(code)

    sys.excepthook = excepthook
    sys.exit = exit_  # type: ignore[assignment]
    atexit.register(_finish_all)


def _finish_all() -> None:
    error = _exit["error"]
    for run in list(_runs):
        with contextlib.suppress(Exception):  # at exit there is nobody left to tell
            run.finish("failed" if error else "completed", error)
