"""`trainboard import tensorboard LOGDIR`: each folder of event files becomes an external run
with its scalars, read with TensorBoard's own EventAccumulator (the reader TensorBoard's
server uses: it handles torn records, several files per run and both scalar encodings)."""

from __future__ import annotations

from pathlib import Path

from trainboard.tracking.sender import CHUNK_POINTS
from trainboard.tracking.spool import Point
from trainboard.tracking.tensorboard import metric_key
from trainboard.tracking.transport import Transport


def run_folders(logdir: Path) -> list[Path]:
    """Every folder under `logdir` (itself included) that holds event files."""
    if not logdir.is_dir():
        raise ValueError(f"{logdir} is not a folder")
    folders = {p.parent for p in logdir.rglob("events.out.tfevents.*") if p.is_file()}
    if not folders:
        raise ValueError(f"no TensorBoard event files (events.out.tfevents.*) under {logdir}")
    return sorted(folders)


def read_scalars(folder: Path) -> list[Point]:
    """The scalars of one run folder as points; a tag's value at a step is its last one."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    points: dict[tuple[str, int], Point] = {}
    for tag in tags.get("scalars", []):
        for event in accumulator.Scalars(tag):
            key = metric_key(tag)
            points[key, event.step] = (key, event.step, float(event.value), event.wall_time)
    for tag in tags.get("tensors", []):  # scalars written as tensors (new_style, tf.summary)
        for event in accumulator.Tensors(tag):
            value = tensor_util.make_ndarray(event.tensor_proto)
            if value.size == 1 and value.dtype.kind in "fiub":
                key = metric_key(tag)
                points[key, event.step] = (key, event.step, float(value.item()), event.wall_time)
    return [p for p in points.values() if p[1] >= 0]


def import_tensorboard(logdir: Path, *, url: str, token: str | None) -> list[tuple[str, int, int]]:
    """Import every run folder of `logdir`; (name, run id, points) of each."""
    transport = Transport(url, token)
    imported = []
    try:
        for folder in run_folders(logdir):
            name = str(folder.relative_to(logdir)) if folder != logdir else logdir.name
            points = read_scalars(folder)
            create = {
                "kind": "external",
                "name": name[:200] or "tensorboard",
                "params": {},
                "tags": ["tensorboard"],
                "notes": f"imported from TensorBoard logs in {folder.resolve()}",
            }
            run_id = transport.create_run(create)
            for start in range(0, len(points), CHUNK_POINTS):
                transport.send_points(run_id, points[start : start + CHUNK_POINTS])
            transport.finish(run_id, {"status": "completed", "error": None})
            imported.append((name, run_id, len(points)))
    finally:
        transport.close()
    return imported
