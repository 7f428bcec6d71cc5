"""The database tables (Run, MetricPoint, MetricBucket, Checkpoint, Worker, UploadedDataset,
Sweep, ModelAlias) and the enums of a run's life; the API's schemas are in
`trainboard.schemas`."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Float, ForeignKey, Index, Integer, String
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunStatus(StrEnum):
    queued = "queued"  # waiting for a worker
    running = "running"  # a worker (or an external script) is training it
    completed = "completed"  # all epochs done, or early-stopped
    failed = "failed"  # an exception, a lost worker past its retries, or a script's report
    diverged = "diverged"  # loss or gradients became NaN/Inf
    cancelled = "cancelled"  # a person stopped it
    pruned = "pruned"  # a sweep stopped it


FINAL_STATUSES = frozenset(
    {
        RunStatus.completed,
        RunStatus.failed,
        RunStatus.diverged,
        RunStatus.cancelled,
        RunStatus.pruned,
    }
)
RESUMABLE_STATUSES = frozenset({RunStatus.failed, RunStatus.cancelled, RunStatus.diverged})


class RunKind(StrEnum):
    job = "job"  # executed by a worker from its spec
    external = "external"  # a user's own script logs into it through the client
    lr_find = "lr_find"  # a learning-rate range test of its spec (training/lr_find.py)
    preflight = "preflight"  # an overfit-one-batch check of its spec (training/preflight.py)


# ---------------------------------------------------------------------------------------------
# Tables


class Run(SQLModel, table=True):
    __table_args__ = (
        Index("ix_run_queue", "status", "priority", "id"),
        # A deleted run's id is never given to another run (links and logs stay unambiguous).
        {"sqlite_autoincrement": True},
    )

    id: int | None = SQLField(default=None, primary_key=True)
    name: str = SQLField(sa_column=Column(String(200), nullable=False))
    kind: str = SQLField(default=RunKind.job, sa_column=Column(String(16), nullable=False))
    status: str = SQLField(default=RunStatus.queued, sa_column=Column(String(16), nullable=False))
    spec: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSON, nullable=False))
    tags: list[str] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    notes: str = ""
    created_at: datetime = SQLField(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    epoch: int = 0
    epochs: int = 0
    attempt: int = 0
    max_retries: int = 1
    priority: int = 0
    device: str | None = None
    devices: int = 1  # processes (one per device) it trains on; a worker claims what it fits
    worker: str | None = None
    error: str | None = None
    summary: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSON, nullable=False))
    sweep_id: int | None = None
    eta_seconds: float | None = None
    # The run folder's size as last recorded (progress, end, upload); None before that.
    disk_bytes: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    # A check's settings (kinds lr_find and preflight), or a sweep trial's number and params.
    options: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON, nullable=True))
    # Queue internals, never in a response. For an external run: when it ends `failed` unless
    # it reports again (store/external.py).
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    # Bumped on every write a live-events client must see; they are its resume cursor.
    metric_seq: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    status_seq: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    checkpoint_seq: int = SQLField(
        default=0, sa_column=Column(BigInteger, nullable=False, default=0)
    )


class MetricPoint(SQLModel, table=True):
    """One value of one key of one run at one step; (run, key, step) is unique."""

    __tablename__ = "metric_point"
    __table_args__ = (
        Index("ix_metric_point_seq", "run_id", "seq"),
        {"sqlite_with_rowid": False},
    )

    run_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = SQLField(sa_column=Column(String(200), primary_key=True))
    step: int = SQLField(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    # NULL stands for NaN: SQLite cannot store NaN, so both databases store it the same way.
    value: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    timestamp: float = SQLField(sa_column=Column(Float, nullable=False))
    seq: int = SQLField(sa_column=Column(BigInteger, nullable=False))


class MetricBucket(SQLModel, table=True):
    """A cell of the downsampling pyramid (store/pyramid.py): five points of a bucket of steps."""

    __tablename__ = "metric_bucket"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = SQLField(sa_column=Column(String(200), primary_key=True))
    level: int = SQLField(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    bucket: int = SQLField(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    count: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    first_step: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    first_value: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    first_ts: float = SQLField(sa_column=Column(Float, nullable=False))
    last_step: int = SQLField(sa_column=Column(BigInteger, nullable=False))
    last_value: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    last_ts: float = SQLField(sa_column=Column(Float, nullable=False))
    low_step: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    low_value: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    low_ts: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    high_step: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    high_value: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    high_ts: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    nan_step: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    nan_value: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))
    nan_ts: float | None = SQLField(default=None, sa_column=Column(Float, nullable=True))


class Checkpoint(SQLModel, table=True):
    __table_args__ = (Index("ux_checkpoint_run_name", "run_id", "name", unique=True),)

    id: int | None = SQLField(default=None, primary_key=True)
    run_id: int = SQLField(sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE")))
    name: str = SQLField(sa_column=Column(String(64), nullable=False))
    epoch: int
    size_bytes: int
    sha256: str
    metrics: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSON, nullable=False))
    is_best: bool = False
    created_at: datetime = SQLField(default_factory=utcnow)
    seq: int = 0


class Worker(SQLModel, table=True):
    id: str = SQLField(primary_key=True, max_length=128)
    host: str
    pid: int
    device: str
    devices: int = 1  # the most devices one run may train on here
    status: str = "idle"
    run_id: int | None = None
    started_at: datetime = SQLField(default_factory=utcnow)
    last_heartbeat: datetime = SQLField(default_factory=utcnow)


class UploadedDataset(SQLModel, table=True):
    __tablename__ = "uploaded_dataset"

    name: str = SQLField(primary_key=True, max_length=64)
    task: str
    rows: int
    columns: list[str] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    target: str
    size_bytes: int
    created_at: datetime = SQLField(default_factory=utcnow)


class SweepStatus(StrEnum):
    running = "running"  # trials are queued, running, or still to be asked for
    completed = "completed"  # every trial ended
    cancelled = "cancelled"  # a person stopped it


class Sweep(SQLModel, table=True):
    """A hyperparameter search: its request (`config`), and what its Optuna study found. The
    study itself lives in Optuna's tables of the same database (study `sweep-<id>`)."""

    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = SQLField(default=None, primary_key=True)
    name: str = SQLField(sa_column=Column(String(200), nullable=False))
    status: str = SQLField(
        default=SweepStatus.running, sa_column=Column(String(16), nullable=False)
    )
    config: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = SQLField(default_factory=utcnow)
    finished_at: datetime | None = None
    best_run_id: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON))
    # Bumped on every change a live-events client must see.
    seq: int = SQLField(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    # One process at a time asks the study for trials: it holds the sweep until this time.
    driver_until: float | None = None
    # Something changed (a trial ended) since the driver last looked.
    dirty: bool = False


class ModelAlias(SQLModel, table=True):
    """A movable name ("production") for one checkpoint of one run; moved by PUT."""

    __tablename__ = "model_alias"

    name: str = SQLField(sa_column=Column(String(64), primary_key=True))
    run_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False)
    )
    checkpoint_name: str = SQLField(sa_column=Column(String(64), nullable=False))
    updated_at: datetime = SQLField(default_factory=utcnow)
