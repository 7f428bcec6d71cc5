"""PageFiles: the page's own files from `frontend/`, and nothing else kept beside them.

The folder also holds npm's metadata and `node_modules` (versions, paths, scripts: of use to
someone probing the server, of none to the page); uPlot's build is served on its own path.
"""

from __future__ import annotations

import os
from pathlib import PurePath

from starlette.staticfiles import StaticFiles

PAGE_SUFFIXES = frozenset({".js", ".css", ".svg", ".png", ".ico", ".webp"})


def is_page_file(path: str) -> bool:
    """Whether a path inside `frontend/` is one the page loads (scripts, styles, images)."""
    file = PurePath(path)
    return (
        file.suffix.lower() in PAGE_SUFFIXES
        and "node_modules" not in file.parts
        and not any(part.startswith(".") for part in file.parts)
    )


class PageFiles(StaticFiles):
    """StaticFiles that answers 404 for anything but the page's own files."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if not is_page_file(path):
            return "", None
        return super().lookup_path(path)
