"""The API's bodies for predictions, the checkpoint leaderboard and model aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ALIAS_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
CHECKPOINT_ID = r"^(latest|best|epoch-\d{4,12})$"


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Rows as the data set has them; checked against the model in serving/inputs.py, which
    # names the row and column of a problem (a schema could only say "invalid").
    inputs: list[Any]
    checkpoint: str = Field(default="best", pattern=CHECKPOINT_ID)


class AliasPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Any]


class Prediction(BaseModel):
    predictions: list[Any]
    probabilities: list[list[float | None]] | None = None
    run_id: int
    checkpoint: str


class RankedCheckpoint(BaseModel):
    """A leaderboard row: a checkpoint, its run, and its value of the ranking metric."""

    run_id: int
    run_name: str
    run_status: str
    dataset: str
    model: str
    id: str
    epoch: int
    value: float
    metrics: dict[str, Any]
    is_best: bool
    sha256: str
    created_at: datetime


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: int = Field(ge=1, le=2**31 - 1)
    checkpoint_id: str = Field(default="best", pattern=CHECKPOINT_ID)


class AliasPublic(BaseModel):
    name: str
    run_id: int
    checkpoint_id: str
    updated_at: datetime
