"""Checkpoint rows: the database's mirror of a run's checkpoint files, the only way to find them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, update
from sqlmodel import Session, col, delete, select

from trainboard.jsonsafe import finite_or_null
from trainboard.models import Checkpoint, Run, RunStatus, utcnow
from trainboard.store.errors import NotFound
from trainboard.training.checkpoint import CheckpointEntry


def _reserve_seqs(session: Session, *, run_id: int, attempt: int | None, count: int) -> int | None:
    """Reserve `count` event numbers; returns the last, or None if the attempt lost the run."""
    guard = update(Run).where(col(Run.id) == run_id)
    if attempt is not None:
        guard = guard.where(col(Run.attempt) == attempt, col(Run.status) == RunStatus.running)
    row = session.exec(
        guard.values(checkpoint_seq=Run.checkpoint_seq + count).returning(col(Run.checkpoint_seq))
    ).first()
    return None if row is None else int(row[0])


def sync_checkpoints(
    session: Session, *, run_id: int, attempt: int | None, entries: list[CheckpointEntry]
) -> bool:
    """Make the run's rows match `entries` (what retention kept); False if the run was lost.

    A worker syncs after each batch of epochs, so this writes only what changed (a row whose
    file and best mark are the same is left as it is), in a few statements: the ORM's unit of
    work cost more than the rest of the batch's writes."""
    existing = {
        name: (sha256, is_best)
        for name, sha256, is_best in session.exec(
            select(Checkpoint.name, Checkpoint.sha256, Checkpoint.is_best).where(
                col(Checkpoint.run_id) == run_id
            )
        )
    }
    changed = [e for e in entries if existing.get(e.name) != (e.sha256, e.is_best)]
    last_seq = _reserve_seqs(session, run_id=run_id, attempt=attempt, count=len(changed))
    if last_seq is None:
        return False
    kept = {e.name for e in entries}
    gone = [name for name in existing if name not in kept]
    if attempt is not None and gone:  # a worker's list is complete: rows it no longer keeps go
        session.exec(
            delete(Checkpoint).where(
                col(Checkpoint.run_id) == run_id, col(Checkpoint.name).in_(gone)
            )
        )
    added = []
    # Each changed row gets its own event number, so a live client resumes between any two.
    for seq, entry in enumerate(changed, start=last_seq - len(changed) + 1):
        values = {
            "epoch": entry.epoch,
            "size_bytes": entry.size_bytes,
            "sha256": entry.sha256,
            # Finite numbers only: JSON has no Infinity or NaN, and a database's JSON functions
            # fail on the row (SQLite) or refuse it (PostgreSQL).
            "metrics": finite_or_null(dict(entry.metrics)),
            "is_best": entry.is_best,
            "seq": seq,
        }
        if entry.created_at:
            values["created_at"] = datetime.fromtimestamp(entry.created_at, UTC)
        if entry.name not in existing:
            added.append({"run_id": run_id, "name": entry.name, "created_at": utcnow()} | values)
            continue
        session.exec(
            update(Checkpoint)
            .where(col(Checkpoint.run_id) == run_id, col(Checkpoint.name) == entry.name)
            .values(**values)
        )
    if added:
        session.connection().execute(insert(Checkpoint), added)
    return True


def list_checkpoints(session: Session, *, run_id: int) -> list[Checkpoint]:
    query = (
        select(Checkpoint).where(col(Checkpoint.run_id) == run_id).order_by(col(Checkpoint.epoch))
    )
    return list(session.exec(query).all())


def committed_checkpoints(session: Session, *, run_id: int) -> list[CheckpointEntry]:
    """The run's checkpoints as its rows record them: what a resumed attempt starts from."""
    return [
        CheckpointEntry(
            row.name,
            row.epoch,
            row.size_bytes,
            row.sha256,
            dict(row.metrics),
            row.is_best,
            row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC).timestamp(),
        )
        for row in list_checkpoints(session, run_id=run_id)
    ]


def find_checkpoint(session: Session, *, run_id: int, checkpoint_id: str) -> Checkpoint:
    """A checkpoint by its id, or `latest` / `best`."""
    rows = list_checkpoints(session, run_id=run_id)
    if checkpoint_id == "latest":
        found = rows[-1] if rows else None
    elif checkpoint_id == "best":
        found = next((r for r in rows if r.is_best), None)
    else:
        found = next((r for r in rows if r.name == checkpoint_id), None)
    if found is None:
        raise NotFound(f"run {run_id} has no checkpoint {checkpoint_id!r}")
    return found


def checkpoints_since(session: Session, *, run_id: int, after_seq: int) -> list[Checkpoint]:
    query = select(Checkpoint).where(
        col(Checkpoint.run_id) == run_id, col(Checkpoint.seq) > after_seq
    )
    return list(session.exec(query.order_by(col(Checkpoint.seq), col(Checkpoint.epoch))).all())
