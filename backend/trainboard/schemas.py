"""The API's request and response schemas, one family per entity (runs, metrics, checkpoints,
workers, data sets); the tables they read from are in `trainboard.models`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, with_config
from typing_extensions import TypedDict

from trainboard.jsonsafe import JsonObject, NoNul
from trainboard.metric_rules import MAX_STEP, METRIC_KEY_PATTERN
from trainboard.models import RunStatus
from trainboard.training.check_settings import LrFindSettings, PreflightSettings
from trainboard.training.spec import RunName, RunNotes, RunSpec, RunTag


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
    # A check's settings (kinds lr_find, preflight).
    options: dict[str, Any] | None = None
    # Why a diverged run diverged (training/diagnosis.py); None for every other status.
    diagnosis: dict[str, Any] | None = None
    devices: int = 1
    # Why a queued run waits beyond the runs ahead of it (no worker fits it); else None.
    queue_reason: str | None = None


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


class LrFindRequest(RunSpec):
    """A RunSpec to test, and the range to sweep the lr over."""

    lr_find: LrFindSettings = Field(default_factory=LrFindSettings)


class PreflightRequest(RunSpec):
    """A RunSpec to check, and how long the check may train."""

    preflight: PreflightSettings = Field(default_factory=PreflightSettings)


class RunUpdate(StrictBody):
    name: Annotated[str, Field(min_length=1, max_length=200), NoNul()] | None = None
    tags: list[RunTag] | None = Field(default=None, max_length=50)
    notes: RunNotes | None = None


class ResumeRequest(StrictBody):
    epochs: int | None = Field(default=None, ge=1, le=100_000)


class FinishRequest(StrictBody):
    # pruned: a sweep's pruner stopped it (`trainboard.sweep` of a function).
    status: Literal["completed", "failed", "pruned"] = "completed"
    error: Annotated[str, Field(max_length=10_000), NoNul()] | None = None
    # The script's config as it ended (merged into spec.params) and its summary values.
    params: JsonObject | None = None
    summary: JsonObject | None = None


@with_config(ConfigDict(extra="forbid"))
class MetricPointIn(TypedDict):
    """One point to write. A TypedDict, not a model: batches hold thousands of points, and
    building a model instance for each one costs more than validating it."""

    key: Annotated[str, Field(pattern=METRIC_KEY_PATTERN)]
    step: Annotated[int, Field(ge=0, le=MAX_STEP)]
    # null, NaN and ±Inf are accepted (a diverging loss is worth recording); the store keeps
    # NaN as NULL.
    value: float | None
    timestamp: NotRequired[Annotated[float | None, Field(ge=0, le=1e11)]]


class MetricsWrite(StrictBody):
    points: list[MetricPointIn] = Field(max_length=100_000)
    attempt: int | None = Field(default=None, ge=0, le=1_000_000)


class Series(BaseModel):
    steps: list[int]
    values: list[float | None]
    timestamps: list[float]


class SweepCurves(BaseModel):
    """A sweep's trials' series of one metric, by run id."""

    key: str
    series: dict[int, Series]


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


class TrialPublic(BaseModel):
    """One trial of a sweep: its run, Optuna number and params, and how it went."""

    run_id: int
    number: int
    params: dict[str, Any]
    status: RunStatus
    value: float | None  # the objective: the best epoch value of its metric
    pruned_epoch: int | None = None
    pruned_against: float | None = None  # the median it lost to


class SweepPublic(BaseModel):
    id: int
    name: str
    status: str
    n_trials: int  # the trials it runs (a grid smaller than the request's n_trials caps it)
    parallelism: int
    sampler: str
    pruner: str
    objective: dict[str, Any]
    space: dict[str, Any]
    base: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    best_run_id: int | None
    best_value: float | None
    best_params: dict[str, Any] | None
    trials: list[TrialPublic]
    runs: list[RunPublic] | None = None


class SweepList(BaseModel):
    items: list[SweepPublic]
    total: int
