"""Fraud/anomaly (``/v1/ml``) bodies, hyperparameters and record schemas."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TabularModelType = Literal["lightgbm", "isolation_forest"]


class StrictModel(BaseModel):
    """API bodies and hyperparameters: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class LightGBMParams(StrictModel):
    max_depth: int = Field(7, ge=-1, le=64, description="-1 = no limit")
    learning_rate: float = Field(0.1, gt=0, le=1)
    n_estimators: int = Field(100, ge=1, le=5000)
    num_leaves: int = Field(31, ge=2, le=4096)
    min_child_samples: int = Field(20, ge=1, le=100000)
    class_weight: Literal["balanced"] | None = Field(
        None, description="'balanced' reweights classes by inverse frequency; null = unweighted"
    )
    subsample: float = Field(1.0, gt=0, le=1)
    colsample_bytree: float = Field(1.0, gt=0, le=1)
    seed: int = Field(42, ge=0)


class IsolationForestParams(StrictModel):
    n_estimators: int = Field(100, ge=1, le=5000)
    contamination: float | Literal["auto"] = Field("auto", description="expected anomaly share in (0, 0.5], or 'auto'")
    max_samples: int | float | Literal["auto"] = Field("auto", description="int rows, float share in (0,1], or 'auto'")
    max_features: float = Field(1.0, gt=0, le=1)
    seed: int = Field(42, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> IsolationForestParams:
        if isinstance(self.contamination, float) and not 0 < self.contamination <= 0.5:
            raise ValueError("contamination must be in (0, 0.5] or 'auto'")
        if isinstance(self.max_samples, float) and not 0 < self.max_samples <= 1:
            raise ValueError("max_samples as a share must be in (0, 1]")
        if isinstance(self.max_samples, int) and self.max_samples < 2:
            raise ValueError("max_samples as a count must be at least 2")
        return self


HYPERPARAMETERS: dict[str, type[StrictModel]] = {
    "lightgbm": LightGBMParams,
    "isolation_forest": IsolationForestParams,
}


class DataPeriod(StrictModel):
    start_date: date
    end_date: date

    @model_validator(mode="after")
    def _ordered(self) -> DataPeriod:
        if self.start_date > self.end_date:
            raise ValueError("start_date must not be after end_date")
        return self


class TrainRequest(StrictModel):
    """``POST /v1/ml/train`` (seed 000)."""

    model_type: TabularModelType
    data_period: DataPeriod
    hyperparameters: dict[str, Any] = Field(default_factory=dict)

    def params(self) -> StrictModel:
        """The hyperparameters validated for ``model_type`` (raises pydantic ValidationError)."""
        return HYPERPARAMETERS[self.model_type].model_validate(self.hyperparameters)


class Record(StrictModel):
    """One time-stamped transaction: numeric/boolean features and an optional 0/1 label."""

    timestamp: datetime
    features: dict[str, float | int | bool]
    label: Literal[0, 1] | None = None
