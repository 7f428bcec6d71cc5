"""`trainboard worker`: a worker process, on the database (`--database-url`, `--home`) or, with
`--server URL`, on the server's REST API alone (a remote worker: no database, no shared folder)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from trainboard.cliargs import positive, settings_of


def add_commands(commands: Any) -> None:
    """Add `worker` to the `trainboard` command's subparsers."""
    p = commands.add_parser("worker", help="claim queued runs and execute them")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    what = "the most devices a run may train on here (default: every GPU, or one per CPU core)"
    p.add_argument("--devices", type=positive, default=0, help=what)
    p.add_argument(
        "--server",
        default=os.environ.get("TRAINBOARD_SERVER"),
        help="the server's URL: a remote worker that reaches only it (TRAINBOARD_SERVER)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("TRAINBOARD_WORKER_TOKEN") or os.environ.get("TRAINBOARD_TOKEN"),
        help="the server's worker token or token (TRAINBOARD_WORKER_TOKEN, TRAINBOARD_TOKEN)",
    )
    p.add_argument("--max-runs", type=positive, default=None, help="exit after this many runs")
    p.add_argument("--home", help="data folder (a remote worker's scratch folder)")
    p.add_argument("--database-url")
    p.set_defaults(func=worker)


def worker(args: argparse.Namespace) -> int:
    """Serve until stopped (SIGTERM, Ctrl-C) or `--max-runs` runs have ended."""
    from trainboard.worker.worker import Worker, resolve_worker_device

    try:
        device = resolve_worker_device(args.device)
        if device.startswith("cuda"):
            from trainboard.training.runtime import resolve_device

            resolve_device(device)
    except RuntimeError as exc:
        print(f"trainboard worker: {exc}", file=sys.stderr)
        return 2
    settings = settings_of(args)
    settings.ensure_dirs()
    if args.server:
        from trainboard.worker.remote import remote_worker

        runner = remote_worker(settings, args.server, args.token, device, args.devices)
        where = f"server {args.server}"
    else:
        from trainboard.db import init_db, make_engine

        engine = make_engine(settings.resolved_database_url)
        init_db(engine)
        runner = Worker(settings, engine, device=device, devices=args.devices)
        where = f"database {engine.url.render_as_string(hide_password=True)}"
    runner.max_runs = args.max_runs

    def stop(_signum: int, _frame: Any) -> None:
        runner.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"worker {runner.id} on {device} (runs of up to {runner.devices} devices), {where}")
    sys.stdout.flush()
    runner.serve_forever()
    return 0
