"""What several `trainboard` commands read from their arguments."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainboard.config import Settings


def positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings, with a command's `--home` and `--database-url` over the environment's."""
    overrides: dict[str, Any] = {}
    if getattr(args, "home", None):
        overrides["home"] = Path(args.home)
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return Settings(**overrides)
