"""The tracking commands of the `trainboard` CLI: `sync` and `import tensorboard`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def add_commands(commands: Any, default_url: str) -> None:
    """Add `sync` and `import` to the CLI's subparsers."""
    p = commands.add_parser("sync", help="send spooled runs (offline or unsent) to a server")
    p.add_argument("dir", help="a run's spool folder, or a folder of them (~/.trainboard/spool)")
    p.add_argument("--url", default=None, help="server (default: the one each run was logged for)")
    p.set_defaults(func=sync)

    p = commands.add_parser("import", help="import runs from other trackers")
    p.add_argument("source", choices=["tensorboard"])
    p.add_argument("logdir", help="a TensorBoard log folder: each folder of event files, a run")
    p.add_argument("--url", default=default_url)
    p.set_defaults(func=import_runs)


def sync(args: argparse.Namespace) -> int:
    """Send every spool under `args.dir`; exit 1 if any could not be sent."""
    from trainboard.tracking.spool import spool_folders
    from trainboard.tracking.sync import sync_spool
    from trainboard.tracking.transport import Refused, Unreachable

    folders = spool_folders(Path(args.dir))
    if not folders:
        print(f"trainboard sync: no spooled run in {args.dir}", file=sys.stderr)
        return 2
    failed = 0
    for folder in folders:
        try:
            run_id, sent = sync_spool(
                folder, url=args.url, token=os.environ.get("TRAINBOARD_TOKEN")
            )
        except (Unreachable, Refused, OSError, ValueError, KeyError) as exc:
            print(f"trainboard sync: {folder}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{folder}: run {run_id}, {sent} points sent")
    return 1 if failed else 0


def import_runs(args: argparse.Namespace) -> int:
    """Import each run folder of a TensorBoard logdir as an external run."""
    from trainboard.tracking.tbimport import import_tensorboard
    from trainboard.tracking.transport import Refused, Unreachable

    try:
        imported = import_tensorboard(
            Path(args.logdir), url=args.url, token=os.environ.get("TRAINBOARD_TOKEN")
        )
    except (Unreachable, Refused, OSError, ValueError) as exc:
        print(f"trainboard import: {exc}", file=sys.stderr)
        return 2
    for name, run_id, count in imported:
        print(f"{name}: run {run_id}, {count} points")
    return 0
