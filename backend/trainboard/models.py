"""Tables and API schemas, one family per entity (Run, MetricPoint, Checkpoint, Worker, Dataset)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, with_config
from sqlalchemy import JSON, BigInteger, Column, Float, ForeignKey, Index, Integer, String
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel
from typing_extensions import TypedDict

from trainboard.jsonsafe import JsonObject, NoNul
from trainboard.training.spec import RunName, RunNotes, RunSpec, RunTag


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
    worker: str | None = None
    error: str | None = None
    summary: dict[str, Any] = SQLField(default_factory=dict, sa_column=Column(JSON, nullable=False))
    sweep_id: int | None = None
    eta_seconds: float | None = None
    # Queue internals, never in a response.
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


# ---------------------------------------------------------------------------------------------
# API schemas


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunPublic(BaseModel):
    id: int
    name: str
    kind: str
    status: RunStatus
    spec: dict[str, Any]
    tags: list[str]
    notes: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    epoch: int
    epochs: int
    attempt: int
    priority: int
    device: str | None
    worker: str | None
    error: str | None
    summary: dict[str, Any]
    sweep_id: int | None
    eta_seconds: float | None
    disk_bytes: int = 0


class RunList(BaseModel):
    items: list[RunPublic]
    total: int


class ExternalRunCreate(StrictBody):
    kind: Literal["external"]
    name: RunName = ""
    params: JsonObject = Field(default_factory=dict)
    tags: list[RunTag] = Field(default_factory=list, max_length=50)
    notes: RunNotes = ""


def _run_create_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "external" if value.get("kind") == "external" else "job"
    return "external" if isinstance(value, ExternalRunCreate) else "job"


RunCreate = Annotated[
    Annotated[RunSpec, Tag("job")] | Annotated[ExternalRunCreate, Tag("external")],
    Discriminator(_run_create_kind),
]


class RunUpdate(StrictBody):
    name: Annotated[str, Field(min_length=1, max_length=200), NoNul()] | None = None
    tags: list[RunTag] | None = Field(default=None, max_length=50)
    notes: RunNotes | None = None


class ResumeRequest(StrictBody):
    epochs: int | None = Field(default=None, ge=1, le=100_000)


class FinishRequest(StrictBody):
    status: Literal["completed", "failed"] = "completed"
    error: Annotated[str, Field(max_length=10_000), NoNul()] | None = None


METRIC_KEY_PATTERN = r"^[A-Za-z0-9_.\-/]{1,200}$"


@with_config(ConfigDict(extra="forbid"))
class MetricPointIn(TypedDict):
    """One point to write. A TypedDict, not a model: batches hold thousands of points, and
    building a model instance for each one costs more than validating it."""

    key: Annotated[str, Field(pattern=METRIC_KEY_PATTERN)]
    step: Annotated[int, Field(ge=0, le=2**62)]
    # null, NaN and ±Inf are accepted (a diverging loss is worth recording); the store keeps
    # NaN as NULL.
    value: float | None
    timestamp: NotRequired[Annotated[float | None, Field(ge=0, le=1e11)]]


class MetricsWrite(StrictBody):
    points: list[MetricPointIn] = Field(max_length=100_000)
    attempt: int | None = Field(default=None, ge=0)


class Series(BaseModel):
    steps: list[int]
    values: list[float | None]
    timestamps: list[float]


class MetricsRead(BaseModel):
    run_id: int
    series: dict[str, Series]
    # Live events from this cursor on carry what came after this read (Last-Event-ID form).
    cursor: str = "0-0-0-0"


class CheckpointPublic(BaseModel):
    id: str
    epoch: int
    size_bytes: int
    sha256: str
    metrics: dict[str, Any]
    is_best: bool
    created_at: datetime


class WorkerPublic(BaseModel):
    id: str
    host: str
    pid: int
    device: str
    status: str
    run_id: int | None
    last_heartbeat: datetime


class DatasetPublic(BaseModel):
    name: str
    task: str
    rows: int
    columns: list[str]
    target: str


class Health(BaseModel):
    status: str
    version: str
    workers: int
    streams: int = 0  # open live-event streams
