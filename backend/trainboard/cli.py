"""`trainboard` commands: serve, worker, train, submit, runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from trainboard.cliargs import settings_of
from trainboard.config import LOOPBACK_HOSTS

# C0 controls, DEL and C1 controls: ESC and CSI sequences can clear or rewrite the terminal.
CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def terminal_safe(value: object) -> str:
    """`value` as text fit for a terminal: control characters shown as `\\x1b`-style escapes.
    Everything printed from a server's answer goes through here."""
    return str(value).translate(CONTROL_ESCAPES)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from trainboard.app import create_app
    from trainboard.timeouts import header_timeout_protocol

    settings = settings_of(args)
    if args.host not in LOOPBACK_HOSTS and not settings.token and not args.insecure:
        print(
            f"refusing to listen on {args.host} without a token: set TRAINBOARD_TOKEN, "
            "or pass --insecure if the network is trusted",
            file=sys.stderr,
        )
        return 2
    app = create_app(settings, workers=args.workers, bind_host=args.host)
    # One uvicorn process: the API scales with async handlers and a thread pool, and several
    # uvicorn workers would leave Nagle on for keep-alive connections (~40 ms stalls).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        http=header_timeout_protocol(settings.header_timeout_seconds),
        limit_concurrency=settings.max_connections,
    )
    return 0


def _read_spec(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        spec = json.loads(text)
    except OSError as exc:
        raise SystemExit(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(spec, dict):
        raise SystemExit(f"{path} must hold a JSON object (a RunSpec)")
    return spec


def train(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from trainboard.db import init_db, make_engine
    from trainboard.models import RunStatus
    from trainboard.training.registry import describe_validation_error
    from trainboard.training.runnable import SpecProblem, validate_names
    from trainboard.training.spec import RunSpec
    from trainboard.worker.foreground import train_in_foreground

    try:
        spec = validate_names(RunSpec.model_validate(_read_spec(args.spec)))
    except ValidationError as exc:
        print(f"{args.spec}: invalid spec: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    except SpecProblem as problem:
        print(f"{args.spec}: invalid spec: {problem}", file=sys.stderr)
        return 2
    settings = settings_of(args)
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    init_db(engine)
    status = train_in_foreground(settings, engine, spec)
    engine.dispose()
    return 0 if status == RunStatus.completed else 1


def check(args: argparse.Namespace) -> int:
    """`trainboard preflight|lr-find SPEC.json`: the check in this process, no server; exit
    status 0 when it passed (preflight) or found a learning rate (lr-find)."""
    from pydantic import ValidationError

    from trainboard.training.checks import CHECKS, run_check
    from trainboard.training.registry import describe_validation_error
    from trainboard.training.runnable import SpecProblem, validate_names
    from trainboard.training.sinks import MemorySink
    from trainboard.training.spec import RunSpec

    kind = args.command.replace("-", "_")
    body = _read_spec(args.spec)
    options = body.pop(kind, {})
    try:
        spec = validate_names(RunSpec.model_validate(body))
        outcome = run_check(
            kind,
            spec,
            options,
            sink=MemorySink(),
            should_stop=lambda: None,
            uploads_dir=settings_of(args).uploads_dir,
        )
    except ValidationError as exc:
        print(f"{args.spec}: invalid spec: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    except (SpecProblem, ValueError) as problem:
        print(f"{args.spec}: {problem}", file=sys.stderr)
        return 2
    print(terminal_safe(outcome.message))
    return 0 if CHECKS[kind].passed(outcome.summary) else 1


def sweep(args: argparse.Namespace) -> int:
    """`trainboard sweep SWEEP.json`: a sweep body (as POST /api/sweeps takes) run to its end
    in this process; exit status 0 when it completed."""
    from trainboard.sweeps.run import SweepProblem, run_sweep

    try:
        result = run_sweep(_read_spec(args.spec), home=args.home, database_url=args.database_url)
    except SweepProblem as problem:
        print(f"{args.spec}: {problem}", file=sys.stderr)
        return 2
    return 0 if result["status"] == "completed" else 1


def submit(args: argparse.Namespace) -> int:
    from trainboard.client import Client, ClientError

    try:
        run = Client(args.url).submit(_read_spec(args.spec))
    except ClientError as exc:
        print(f"trainboard submit: {terminal_safe(exc)}", file=sys.stderr)
        return 2
    print(f"queued run {terminal_safe(run['id'])}: {terminal_safe(run['name'])}")
    return 0


def list_runs(args: argparse.Namespace) -> int:
    from trainboard.client import Client, ClientError

    try:
        runs = Client(args.url).list_runs(limit=args.limit)
    except ClientError as exc:
        print(f"trainboard runs: {terminal_safe(exc)}", file=sys.stderr)
        return 2
    print(f"{'ID':>5}  {'STATUS':<10} {'EPOCH':>9}  {'BEST VAL':>10}  NAME")
    for run in runs:
        best = run["summary"].get("best_val_loss")
        best_text = f"{best:.4g}" if isinstance(best, float) else "-"
        rid, status, epoch, epochs, name = (
            terminal_safe(run[key]) for key in ("id", "status", "epoch", "epochs", "name")
        )
        print(f"{rid:>5}  {status:<10} {epoch:>4}/{epochs:<4}  {best_text:>10}  {name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainboard", description="Experiment tracker and training-job runner for PyTorch"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    default_url = os.environ.get("TRAINBOARD_URL", "http://127.0.0.1:8000")

    p = commands.add_parser("serve", help="the web app and REST API, with embedded workers")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="embedded worker processes (0 for none)")
    p.add_argument("--home", help="data folder (TRAINBOARD_HOME)")
    p.add_argument("--database-url", help="SQLAlchemy URL (TRAINBOARD_DATABASE_URL)")
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback host without a token"
    )
    p.set_defaults(func=serve)

    p = commands.add_parser("train", help="run one spec in the foreground")
    p.add_argument("spec", help="RunSpec JSON file ('-' for stdin)")
    p.add_argument("--home")
    p.add_argument("--database-url")
    p.set_defaults(func=train)

    for name, what in (
        ("preflight", "check that the spec's model can overfit one batch (seconds, no server)"),
        ("lr-find", "the learning-rate range test of a spec (seconds, no server)"),
    ):
        p = commands.add_parser(name, help=what)
        p.add_argument("spec", help="RunSpec JSON file ('-' for stdin)")
        p.add_argument("--home", help="data folder, for uploaded data sets")
        p.set_defaults(func=check)

    p = commands.add_parser("sweep", help="run a hyperparameter sweep here, no server needed")
    p.add_argument("spec", help="sweep JSON file, as POST /api/sweeps takes ('-' for stdin)")
    p.add_argument("--home")
    p.add_argument("--database-url")
    p.set_defaults(func=sweep)

    p = commands.add_parser("submit", help="queue a run through the REST API")
    p.add_argument("spec")
    p.add_argument("--url", default=default_url)
    p.set_defaults(func=submit)

    p = commands.add_parser("runs", help="list runs through the REST API")
    p.add_argument("--url", default=default_url)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=list_runs)

    from trainboard.launch.command import add_commands as add_launch_commands
    from trainboard.tracking.commands import add_commands
    from trainboard.worker.command import add_commands as add_worker_commands

    add_worker_commands(commands)
    add_commands(commands, default_url)
    add_launch_commands(commands)

    from trainboard.serving.command import add_commands as add_serving_commands

    add_serving_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "worker") and args.__dict__.get("workers", 0) < 0:
        print("--workers must be 0 or more", file=sys.stderr)
        return 2
    code = int(args.func(args) or 0)
    if argv is None and args.command == "train":
        # The run is recorded and every file closed: the prompt comes back without waiting
        # for the interpreter's teardown (torch's takes a good part of a second).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
