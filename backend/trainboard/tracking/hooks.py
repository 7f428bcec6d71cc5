"""How the process ends, for runs that were never finished: an uncaught exception or a
non-zero `sys.exit` / `exit` / `quit` ends them `failed`, a normal exit `completed` (at
atexit). A bare `raise SystemExit(3)` cannot be seen: no hook observes it, and atexit is not
told the exit code, so such a run ends `completed`. A forked child's copies of the runs are
inert: the parent logs and finishes them, and the child has no sending thread."""

from __future__ import annotations

import atexit
import builtins
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol


class Finishable(Protocol):
    def finish(self, status: str = "completed", error: str | None = None) -> None: ...

    def detach(self) -> None: ...


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

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        _exit["error"] = f"{kind.__name__}: {value}"
        original_hook(kind, value, tb)

    sys.excepthook = excepthook
    sys.exit = _noting(sys.exit)  # type: ignore[assignment]
    for name in ("exit", "quit"):  # the site module's, absent under `python -S`
        if hasattr(builtins, name):
            setattr(builtins, name, _noting(getattr(builtins, name)))
    atexit.register(_finish_all)
    os.register_at_fork(after_in_child=_detach_all)


def _noting(original: Callable[..., Any]) -> Callable[..., Any]:
    """`original` (an exit function) that first notes a non-zero code: SystemExit never
    reaches the excepthook."""

    def exit_(code: Any = None) -> None:
        if code not in (None, 0):
            _exit["error"] = f"the script exited with {code!r}"
        original(code)

    return exit_


def _detach_all() -> None:
    # The child inherited the runs, not the sending thread: finishing them would wait for it.
    for run in _runs:
        with contextlib.suppress(Exception):
            run.detach()
    _runs.clear()


def _finish_all() -> None:
    error = _exit["error"]
    for run in list(_runs):
        with contextlib.suppress(Exception):  # at exit there is nobody left to tell
            run.finish("failed" if error else "completed", error)
