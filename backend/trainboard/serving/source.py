"""Which checkpoint file a request means: found by id in the database, never by a client's
path, and the rebuilt model with its spec."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from trainboard.config import Settings
from trainboard.inference import TrainedModel, load_model_state
from trainboard.store.checkpoints import find_checkpoint
from trainboard.store.errors import NotFound
from trainboard.training.checkpoint import load_checkpoint
from trainboard.training.spec import RunSpec

STORED_NAME = re.compile(r"^epoch-\d{4,}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint as its row records it, with the file it names."""

    run_id: int
    name: str
    sha256: str
    path: Path


def checkpoint_ref(
    session: Session, settings: Settings, *, run_id: int, checkpoint_id: str
) -> CheckpointRef:
    """The checkpoint `checkpoint_id` (or `latest` / `best`) of the run; NotFound when it or
    its file is missing. The file's name comes from the row, and is checked once more."""
    row = find_checkpoint(session, run_id=run_id, checkpoint_id=checkpoint_id)
    folder = (settings.run_dir(run_id) / "checkpoints").resolve()
    path = (folder / f"{row.name}.pt").resolve()
    if not STORED_NAME.match(row.name) or path.parent != folder or not path.is_file():
        raise NotFound(f"the file of checkpoint {row.name!r} is gone")
    if not SHA256.match(row.sha256):
        raise NotFound(f"checkpoint {row.name!r} has no recorded sha256")
    return CheckpointRef(run_id, row.name, row.sha256, path)


@dataclass
class Loaded:
    """A checkpoint's model, rebuilt, in eval mode on the CPU, and the spec it was trained by."""

    model: TrainedModel
    spec: RunSpec


def load(ref: CheckpointRef, settings: Settings) -> Loaded:
    """Rebuild the model of `ref` (weights read with weights_only=True); ValueError saying why
    it cannot be (an external run's checkpoint has no spec, a model over the size limit)."""
    state = load_checkpoint(ref.path, map_location="cpu")
    model = load_model_state(state, "cpu", max_parameters=settings.max_model_parameters)
    return Loaded(model, RunSpec.model_validate(state["spec"]))
