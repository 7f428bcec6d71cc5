"""Child processes that die with their parent (Linux), instead of living on as orphans."""

from __future__ import annotations

import os
import sys


def follow_parent() -> None:
    """Get SIGTERM when the parent dies (Linux); elsewhere a no-op.

    Call it in the child: first thing in its `main`, or as Popen's `preexec_fn`. The signal
    comes when the parent *thread* that started the child exits, so start children from a
    thread that lives as long as they should (the main thread, or the event loop's)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() == 1:  # the parent was already gone before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)
