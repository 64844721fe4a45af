"""Fraud/anomaly (``/v1/ml``) bodies, hyperparameters, record schemas and the training, data and registry
responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from schemas import jobs
from schemas.common import IsoDate, JsonFloat, JsonInt, UtcDatetime, document_zero_bounds, per_type_rules

TabularModelType = Literal["lightgbm", "isolation_forest"]


class StrictModel(BaseModel):
    """API bodies and hyperparameters: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class LightGBMParams(StrictModel):
    max_depth: JsonInt = Field(7, ge=-1, le=64, description="-1 = no limit")
    learning_rate: JsonFloat = Field(0.1, gt=0, le=1)
    n_estimators: JsonInt = Field(100, ge=1, le=5000)
    num_leaves: JsonInt = Field(31, ge=2, le=4096)
    min_child_samples: JsonInt = Field(20, ge=1, le=100000)
    class_weight: Literal["balanced"] | None = Field(
        None, description="'balanced' reweights classes by inverse frequency; null = unweighted"
    )
    subsample: JsonFloat = Field(1.0, gt=0, le=1)
    colsample_bytree: JsonFloat = Field(1.0, gt=0, le=1)
    seed: JsonInt = Field(42, ge=0)


class IsolationForestParams(StrictModel):
    n_estimators: JsonInt = Field(100, ge=1, le=5000)
    contamination: float | Literal["auto"] = Field(
        "auto",
        description="expected anomaly share in (0, 0.5], or 'auto'",
        json_schema_extra={"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 0.5}, {"const": "auto"}]},
    )
    max_samples: int | float | Literal["auto"] = Field(
        "auto",
        description="a whole number >= 2: rows per tree; a number in (0, 1]: share of the rows; or 'auto'",
        json_schema_extra={
            "anyOf": [
                {"type": "integer", "minimum": 2},
                {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                {"const": "auto"},
            ]
        },
    )
    max_features: JsonFloat = Field(1.0, gt=0, le=1)
    seed: JsonInt = Field(42, ge=0)

    @field_validator("max_samples", mode="before")
    @classmethod
    def _by_value(cls, value: Any) -> Any:
        """JSON has one kind of number: 1 and 1.0 are the same value (the whole data), 2.0 is the count 2."""
        if isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and value >= 2:
            return int(value)
        if isinstance(value, int) and value == 1:
            return 1.0
        return value

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
    """Whole days, both ends included. A rule across the two fields, stated here because a JSON schema cannot:
    start_date must not be after end_date (422 VALIDATION_ERROR)."""

    model_config = ConfigDict(
        json_schema_extra={
            "description": "whole days, both ends included; start_date must not be after end_date (422 "
            "VALIDATION_ERROR: a rule across the two fields, which the schema does not state)"
        }
    )

    start_date: IsoDate = Field(description="first day, YYYY-MM-DD; not after end_date")
    end_date: IsoDate = Field(description="last day (included), YYYY-MM-DD; not before start_date")

    @model_validator(mode="after")
    def _ordered(self) -> DataPeriod:
        if self.start_date > self.end_date:
            raise ValueError("start_date must not be after end_date")
        return self


class TabularJobSpec(BaseModel):
    """The ``spec`` of a tabular ``TrainRequested``: the records' period and the validated hyperparameters."""

    data_period: DataPeriod
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class TrainRequest(StrictModel):
    """``POST /v1/ml/train`` (seed 000). ``hyperparameters`` are checked against the model type's own parameters
    (the if/then/else on ``model_type``). Not in the schema (422 on the rules a JSON schema cannot state):
    ``data_period.start_date`` must not be after ``end_date``, and the period must hold records
    (``NO_DATA_IN_PERIOD``)."""

    model_config = ConfigDict(
        json_schema_extra={
            **per_type_rules("model_type", "hyperparameters", HYPERPARAMETERS),
            "description": "hyperparameters are the model type's own (the if/then/else on model_type). Rules the "
            "schema does not state (422): data_period.start_date must not be after end_date (VALIDATION_ERROR), "
            "and the period must hold records (NO_DATA_IN_PERIOD).",
            "examples": [
                {
                    "model_type": "lightgbm",
                    "data_period": {"start_date": "2025-10-01", "end_date": "2025-11-15"},
                    "hyperparameters": {"max_depth": 7, "learning_rate": 0.1, "n_estimators": 100},
                }
            ],
        }
    )  # the seed's example

    model_type: TabularModelType
    data_period: DataPeriod
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="the model type's hyperparameters (LightGBMParams or IsolationForestParams); omitted ones take "
        "their defaults",
    )

    def params(self) -> StrictModel:
        """The hyperparameters validated for ``model_type`` (raises pydantic ValidationError)."""
        return HYPERPARAMETERS[self.model_type].model_validate(self.hyperparameters)


class Record(StrictModel):
    """One time-stamped transaction: numeric/boolean features and an optional 0/1 label."""

    timestamp: datetime
    features: dict[str, float | int | bool]
    label: Literal[0, 1] | None = None


# -- responses ----------------------------------------------------------------------------------------------


class TrainAccepted(BaseModel):
    """``POST /v1/ml/train`` (202): the job was put on Kafka and will be trained."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "job_abc123",
                    "status": "started",
                    "model_type": "lightgbm",
                    "estimated_duration_minutes": 15,
                    "started_at": "2025-11-16T12:00:00Z",
                }
            ]
        }
    )  # the seed's example

    job_id: str
    status: str = Field(description="always 'started'")
    model_type: TabularModelType
    estimated_duration_minutes: float = Field(
        description="record count x minutes per record, learnt from the last 20 completed jobs of this type"
    )
    started_at: UtcDatetime


class JobStatus(BaseModel):
    """A training job's status: exactly the seed's fields, and ``error`` only on a failed or cancelled job."""

    job_id: str
    status: jobs.JobStatus
    model_type: str
    model_id: str | None = Field(description="the registered model, once the job completed")
    progress: float = Field(description="percent done, 0-100")
    metrics: dict[str, Any] | None = Field(description="hold-out metrics of the trained model (completed jobs)")
    started_at: UtcDatetime
    completed_at: UtcDatetime | None
    duration_minutes: float | None
    error: str | None = Field(None, description="why the job failed or was cancelled; absent otherwise")

    @model_serializer(mode="wrap")
    def _error_only_when_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("error") is None:
            out.pop("error", None)
        return out


class DatePeriod(BaseModel):
    """A period of whole days as ISO dates (``YYYY-MM-DD``), both ends included."""

    start_date: str
    end_date: str


class TrainingJob(JobStatus):
    """One job of ``GET /v1/ml/train/history``: its status and what it was trained on."""

    attempts: int | None = Field(description="attempts so far (a job is retried when its worker is lost)")
    record_count: int | None = Field(description="records in the data period when the job was submitted")
    data_period: DatePeriod | None
    hyperparameters: dict[str, Any] | None = Field(description="the validated hyperparameters, defaults included")
    estimated_duration_minutes: float | None
    baseline: dict[str, Any] | None = Field(
        description="what always predicting the training set's majority class scores on the hold-out"
    )
    holdout: dict[str, Any] | None = Field(description="the hold-out the metrics were measured on")


class TrainingHistory(BaseModel):
    """``GET /v1/ml/train/history``: training jobs, newest first."""

    jobs: list[TrainingJob]
    count: int
    limit: int


class CancelRequested(BaseModel):
    """``POST /v1/ml/train/{job_id}/cancel`` (202): the cancel request is on Kafka."""

    job_id: str
    status: str = Field(description="the job's status when the cancel was requested")
    cancel_requested: bool
    updated_at: str = Field(description="when the cancel was requested (ISO 8601 UTC)")


class RecordsAccepted(BaseModel):
    """``POST /v1/ml/data`` (201): the records were validated, published and stored."""

    batch_id: str
    accepted: int = Field(description="records stored")
    chunks: int = Field(description="records.batch events the batch was published as")
    first_timestamp: str = Field(description="earliest record timestamp (ISO 8601 UTC)")
    last_timestamp: str = Field(description="latest record timestamp (ISO 8601 UTC)")


class FeatureSummary(BaseModel):
    """A feature seen in the period and the type of its values."""

    name: str
    type: str = Field(description="integer, number, mixed or missing (no value in the period)")


class DataSummary(BaseModel):
    """``GET /v1/ml/data/summary``: what the records of a period hold."""

    period: DatePeriod
    record_count: int
    labelled_count: int = Field(description="records with a 0/1 label")
    label_rate: float | None = Field(description="share of labelled records labelled 1; null without labels")
    first_timestamp: str | None = Field(description="earliest record in the period (ISO 8601 UTC)")
    last_timestamp: str | None = Field(description="latest record in the period (ISO 8601 UTC)")
    features: list[FeatureSummary] = Field(description="every feature seen in the period, by name")


class ModelSummary(BaseModel):
    """A model in the registry (seed 000's fields)."""

    model_id: str
    model_name: str
    model_type: str
    version: str
    status: str = Field(description="trained, staging, canary, production, archived or rolled_back")
    metrics: dict[str, Any] = Field(description="hold-out metrics measured at training time")
    trained_at: str | None = Field(description="ISO 8601 UTC")
    deployed_at: str | None = Field(description="last promotion to production (ISO 8601 UTC); null if never")


class ModelList(BaseModel):
    """``GET /v1/ml/models``: models in the registry, newest first."""

    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    """``GET /v1/ml/models/{model_id}``: one model with its lineage and status history."""

    lineage: dict[str, Any] = Field(
        description="training job, data period, record count, hyperparameters, library versions, hold-out, artifact"
    )
    artifact_sha256: str
    artifact_bytes: int
    history: list[dict[str, Any]] = Field(
        description="status changes, oldest first: status, from, status_version, at, actor, reason"
    )


class CompareRow(BaseModel):
    """One compared model's hold-out metrics as stored at training time (null: not measured)."""

    model_id: str
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1_score: float | None
    roc_auc: float | None
    false_positive_rate: float | None


class MetricInterval(BaseModel):
    """The candidate's lead on one metric and its bootstrap interval."""

    diff: float | None = Field(description="candidate minus the other model; null if either metric is missing")
    ci_low: float | None = Field(description="lower end of the percentile interval; null without an interval")
    ci_high: float | None = Field(description="upper end of the percentile interval; null without an interval")
    level: float = Field(description="the interval's confidence level (Bonferroni-adjusted beyond two models)")
    conclusive: bool = Field(description="the interval excludes 0")


class ModelDifference(BaseModel):
    """The candidate (``model_id``) against one other model (``versus``)."""

    model_id: str
    versus: str
    paired: bool = Field(description="both models share the hold-out, so the same resampled records are used")
    method: str = Field(description="paired, unpaired, or none (a model has no stored hold-out predictions)")
    records: dict[str, int] = Field(
        description="hold-out sizes: {'shared': n} when paired, else n per model id; empty without an interval"
    )
    metrics: dict[str, MetricInterval] = Field(description="per metric name")


class CompareMethod(BaseModel):
    """How the comparison was made."""

    primary_metric: str = Field(description="the only metric that decides")
    candidate: str
    resampling: str
    interval: str
    resamples: int
    seed: int
    level: float = Field(description="family-wise confidence level")
    comparisons: int = Field(description="the candidate against this many other models")
    adjustment: str | None = Field(description="'bonferroni' beyond one comparison, else null")
    interval_level: float = Field(description="each interval's confidence level")
    note: str


class ModelComparison(BaseModel):
    """``POST /v1/ml/models/compare``: the seed's comparison, winner and improvement, with the uncertainty."""

    comparison: list[CompareRow]
    winner: str | None = Field(description="the candidate, only if its f1_score is conclusively higher than all others")
    improvement: dict[str, float] = Field(
        description="the winner's metrics minus the runner-up's; empty without a winner"
    )
    leader: str = Field(description="the candidate: highest hold-out f1_score (ties: higher roc_auc, then newer)")
    same_holdout: bool | None = Field(
        description="all models were measured on the same hold-out; null if a model has no hold-out fingerprint"
    )
    paired: bool = Field(description="every difference is a paired one")
    differences: list[ModelDifference] = Field(description="the candidate against each other scored model")
    reason: str
    method: CompareMethod


document_zero_bounds(globals())
