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
# What `training.data.preprocess.apply` knows, and so what serving can take rows for.
PREPROCESSING_KINDS = ("columns", "image", "tokens", "standardize")


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint as its row records it, with the file it names."""

    run_id: int
    name: str
    sha256: str
    path: Path


def checkpoint_file(settings: Settings, *, run_id: int, name: str) -> Path:
    """The file of the run's checkpoint `name` (a row's name, checked once more: it must be
    `epoch-NNNN` and stay in the run's checkpoint folder); NotFound when it is missing."""
    folder = (settings.run_dir(run_id) / "checkpoints").resolve()
    path = (folder / f"{name}.pt").resolve()
    if not STORED_NAME.match(name) or path.parent != folder or not path.is_file():
        raise NotFound(f"the file of checkpoint {name!r} is gone")
    return path


def checkpoint_ref(
    session: Session, settings: Settings, *, run_id: int, checkpoint_id: str
) -> CheckpointRef:
    """The checkpoint `checkpoint_id` (or `latest` / `best`) of the run; NotFound when it or
    its file is missing. The file's name comes from the row, and is checked once more."""
    row = find_checkpoint(session, run_id=run_id, checkpoint_id=checkpoint_id)
    path = checkpoint_file(settings, run_id=run_id, name=row.name)
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
    it cannot be (an external run's checkpoint has no spec, a model over the size limit,
    weights that do not fit the spec's model, a key missing from what the checkpoint holds)."""
    try:
        state = load_checkpoint(ref.path, map_location="cpu")
        model = load_model_state(state, "cpu", max_parameters=settings.max_model_parameters)
        spec = RunSpec.model_validate(state["spec"])
    except (ValueError, OSError):
        raise  # a sentence naming the problem already; a disk that failed us is no 422
    except Exception as exc:  # a size mismatch (RuntimeError), a missing key (KeyError), ...
        raise ValueError(f"its model cannot be rebuilt: {phrase(exc)}") from exc
    kind = model.preprocessing.get("kind") if isinstance(model.preprocessing, dict) else None
    if kind is None:
        raise ValueError("its model cannot be rebuilt: its preprocessing has no 'kind'")
    if kind not in PREPROCESSING_KINDS:
        raise ValueError(
            f"its model cannot be rebuilt: unknown preprocessing kind {kind!r} "
            f"(known: {', '.join(PREPROCESSING_KINDS)})"
        )
    return Loaded(model, spec)


def phrase(exc: BaseException, limit: int = 300) -> str:
    """`exc` as a short phrase for an error message: a KeyError as the key it lacked, others
    as their type and message on one line, cut at `limit` characters."""
    if isinstance(exc, KeyError):
        text = f"the checkpoint lacks the key {exc.args[0]!r}" if exc.args else "a key is missing"
    else:
        message = " ".join(str(exc).split())
        text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
