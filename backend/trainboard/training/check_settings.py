"""The settings of the checks that run as jobs (`training/checks.py`), as the API and the CLI
take them: pydantic models, no torch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LrFindSettings(BaseModel):
    """How the range test sweeps the lr: exponentially from `start_lr` to `end_lr`."""

    model_config = ConfigDict(extra="forbid")

    start_lr: float = Field(default=1e-7, ge=1e-12, le=10)
    end_lr: float = Field(default=10.0, ge=1e-12, le=1000)
    steps: int = Field(default=100, ge=5, le=2000)

    @model_validator(mode="after")
    def _rising(self) -> LrFindSettings:
        if self.end_lr <= self.start_lr:
            raise ValueError("end_lr must be above start_lr")
        return self


class PreflightSettings(BaseModel):
    """How long the one-batch check may train: at most `steps` steps and `seconds`."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=300, ge=10, le=5000)
    seconds: float = Field(default=20.0, gt=0, le=600)
