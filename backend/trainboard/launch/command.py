"""`trainboard launch slurm`: keep Slurm jobs, each a remote worker for one run, while runs wait."""

from __future__ import annotations

import argparse
import os
from typing import Any

from trainboard.cliargs import positive


def add_commands(commands: Any) -> None:
    """Add `launch slurm` to the `trainboard` command's subparsers."""
    launch = commands.add_parser("launch", help="start workers with a cluster's scheduler")
    schedulers = launch.add_subparsers(dest="scheduler", required=True)
    p = schedulers.add_parser(
        "slurm", help="keep up to --max-jobs Slurm jobs, each `trainboard worker --max-runs 1`"
    )
    p.add_argument(
        "--server",
        default=os.environ.get("TRAINBOARD_SERVER") or os.environ.get("TRAINBOARD_URL"),
        help="the server's URL as the jobs reach it (TRAINBOARD_SERVER)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("TRAINBOARD_WORKER_TOKEN") or os.environ.get("TRAINBOARD_TOKEN"),
        help="the token the jobs' workers use (TRAINBOARD_WORKER_TOKEN, TRAINBOARD_TOKEN)",
    )
    p.add_argument("--max-jobs", type=positive, default=4)
    p.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        help="an argument for sbatch, e.g. --sbatch-arg=--gres=gpu:1 (repeatable)",
    )
    p.set_defaults(func=launch_slurm)


def launch_slurm(args: argparse.Namespace) -> int:
    from trainboard.launch.slurm import run_launcher

    return run_launcher(args)
