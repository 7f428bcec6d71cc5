"""Worker rows: registration, heartbeats, listing; uploaded data set rows."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from trainboard.models import UploadedDataset, Worker, utcnow
from trainboard.store.errors import Conflict

if TYPE_CHECKING:  # the data package loads torch; workers and the server read rows first
    from trainboard.training.data.types import DataInfo


def register_worker(
    session: Session, *, worker_id: str, host: str, pid: int, device: str, devices: int = 1
) -> Worker:
    worker = session.get(Worker, worker_id) or Worker(
        id=worker_id, host=host, pid=pid, device=device, devices=devices
    )
    worker.status, worker.run_id, worker.last_heartbeat = "idle", None, utcnow()
    session.add(worker)
    session.flush()
    return worker


def heartbeat_worker(session: Session, *, worker_id: str, status: str, run_id: int | None) -> bool:
    """Record that the worker is alive and what it does; False when it is not registered."""
    worker = session.get(Worker, worker_id)
    if worker is None:
        return False
    worker.status, worker.run_id, worker.last_heartbeat = status, run_id, utcnow()
    session.add(worker)
    return True


def list_workers(session: Session, *, include_stopped: bool = True) -> list[Worker]:
    query = select(Worker).order_by(col(Worker.started_at))
    if not include_stopped:
        query = query.where(col(Worker.status) != "stopped")
    return list(session.exec(query).all())


def _live(seen_since: datetime) -> tuple[Any, ...]:
    """Workers heard from since `seen_since` and not stopped."""
    return col(Worker.status) != "stopped", col(Worker.last_heartbeat) >= seen_since


def count_live_workers(session: Session, *, seen_since: datetime) -> int:
    """Workers heard from since `seen_since` and not stopped, counted by the database."""
    return session.exec(select(func.count()).where(*_live(seen_since))).one()


def most_devices(session: Session, *, seen_since: datetime) -> int | None:
    """The most devices one run may train on with any worker heard from since `seen_since`
    and not stopped; None when no such worker is running."""
    return session.exec(select(func.max(col(Worker.devices))).where(*_live(seen_since))).first()


def add_upload(session: Session, *, dataset: UploadedDataset) -> UploadedDataset:
    if session.get(UploadedDataset, dataset.name) is not None:
        raise Conflict(f"a data set named {dataset.name!r} already exists; choose another name")
    session.add(dataset)
    session.flush()
    return dataset


def list_uploads(session: Session) -> list[UploadedDataset]:
    return list(
        session.exec(select(UploadedDataset).order_by(col(UploadedDataset.created_at))).all()
    )


def upload_data_info(session: Session, *, name: str) -> DataInfo | None:
    """What a model needs to know of the uploaded data set `name`, from its row; None when
    there is no such upload."""
    from trainboard.training.data.uploads import upload_info

    upload = session.get(UploadedDataset, name)
    return None if upload is None else upload_info(upload.task, len(upload.columns))
