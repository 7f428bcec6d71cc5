"""What a run was started from: git commit, dirty flag and diff, Python, torch, command line."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

MAX_DIFF_BYTES = 100_000  # a diff beyond this is cut: the run's params stay small


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def describe_environment() -> dict[str, Any]:
    """The code and environment of this process; git fields only inside a work tree."""
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "argv": list(sys.argv),
    }
    with contextlib.suppress(metadata.PackageNotFoundError):
        found["torch"] = metadata.version("torch")
    commit = _git("rev-parse", "HEAD")
    if commit:
        found["git_commit"] = commit.strip()
        diff = _git("diff", "HEAD") or ""
        found["git_dirty"] = bool(diff) or bool(_git("status", "--porcelain", "-uno"))
        if diff:
            cut = diff.encode()[:MAX_DIFF_BYTES].decode(errors="ignore")
            found["git_diff"] = cut + ("\n[cut]" if len(diff.encode()) > MAX_DIFF_BYTES else "")
    return found
