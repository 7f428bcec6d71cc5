"""`trainboard export RUN_ID [--checkpoint best] --format onnx|torchscript|pt2 -o FILE`: the
server's export, verified the same way and from the same cache, run here on the data folder
and database (no server needed)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any, get_args

from trainboard.config import Settings
from trainboard.serving.export import Format


def add_commands(commands: Any) -> None:
    """Add `export` to the `trainboard` command's subparsers."""
    p = commands.add_parser("export", help="a checkpoint as ONNX, TorchScript or .pt2 (verified)")
    p.add_argument("run_id", type=int)
    p.add_argument("--checkpoint", default="best", help="epoch-NNNN, best or latest")
    p.add_argument("--format", required=True, choices=get_args(Format))
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--home")
    p.add_argument("--database-url")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    """Write the verified export; exit status 2 with the reason when there is none."""
    from trainboard.db import init_db, make_engine, reader, session_scope
    from trainboard.serving.cache import exported
    from trainboard.serving.source import checkpoint_ref
    from trainboard.store.errors import NotFound

    overrides: dict[str, Any] = {}
    if args.home:
        overrides["home"] = Path(args.home)
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = Settings(**overrides)
    engine = make_engine(settings.resolved_database_url)
    try:
        init_db(engine)
        with session_scope(reader(engine)) as session:
            ref = checkpoint_ref(
                session, settings, run_id=args.run_id, checkpoint_id=args.checkpoint
            )
        result = exported(settings, ref, args.format)
        shutil.copyfile(result.path, args.output)
    except NotFound as problem:
        print(f"trainboard export: {problem}", file=sys.stderr)
        return 2
    except ValueError as problem:  # ExportProblem, or a model that cannot be rebuilt
        print(
            f"trainboard export: checkpoint {args.checkpoint} of run {args.run_id} "
            f"cannot be exported: {problem}",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(f"trainboard export: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    origin = "from the cache" if result.cached else f"in {result.seconds:.1f} s"
    print(
        f"wrote {args.output}: run {ref.run_id} {ref.name} as {args.format} ({origin}); "
        f"matches the model on {result.rows} validation rows within {result.max_difference:.2g}"
    )
    return 0
