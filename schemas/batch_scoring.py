"""Batch scoring jobs (``/v1/ml/predict/batch``): score records already ingested (a data period) or an uploaded
file with the production model or a named one, in chunks, on the job platform (lease, retry, cancel)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import jobs
from schemas.common import UtcDatetime, document_zero_bounds
from schemas.tabular import DataPeriod, StrictModel

FileFormat = Literal["csv", "jsonl"]
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
"""the largest file ``POST /v1/ml/predict/batch`` takes (larger sets: ingest them and score a data period)"""


class BatchScoreOptions(StrictModel):
    """What a scoring job takes besides its records (the fields of the multipart form)."""

    model_id: str | None = Field(
        None, min_length=1, description="a registered tabular model; default: the model in production now"
    )
    chunk_records: int = Field(10_000, ge=100, le=100_000, description="records scored per step (progress, cancel)")
    max_records_per_second: int | None = Field(
        None, ge=1, description="pace the job (leave the cores to live serving); default: as fast as it goes"
    )


class BatchScoreRequest(BatchScoreOptions):
    """``POST /v1/ml/predict/batch`` as JSON: score the records of a period (ingested with ``POST /v1/ml/data``).
    To score a file instead, send it as multipart/form-data (field ``file``, optional fields ``model_id``,
    ``format``, ``chunk_records``, ``max_records_per_second``)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data_period": {"start_date": "2025-10-01", "end_date": "2025-10-31"}}]}
    )

    data_period: DataPeriod


class BatchScoringSpec(BaseModel):
    """The ``spec`` of a scoring job's command (``TrainRequested`` with kind ``score``)."""

    source: Literal["data_period", "file"]
    model_id: str
    data_period: DataPeriod | None = None
    input_file_id: str | None = Field(None, description="GridFS id (artifacts bucket) of the uploaded file")
    input_format: FileFormat | None = None
    input_filename: str | None = None
    chunk_records: int = 10_000
    max_records_per_second: int | None = None


class BatchAccepted(BaseModel):
    """``POST /v1/ml/predict/batch`` (202): the job's command is on Kafka."""

    job_id: str
    status: str
    model_id: str = Field(description="the model that scores (fixed at submission, also for retries)")
    model_type: str
    source: Literal["data_period", "file"]
    record_count: int = Field(description="records to score")
    estimated_duration_minutes: float
    submitted_at: UtcDatetime
    status_url: str
    results_url: str


class BatchJob(BaseModel):
    """``GET /v1/ml/predict/batch/{job_id}``: a scoring job's status, progress and results."""

    job_id: str
    status: jobs.JobStatus
    model_type: str
    model_id: str | None
    progress: float = Field(description="percent of the records scored, 0-100")
    metrics: dict[str, Any] | None = Field(
        description="records scored, predicted positives, mean score, throughput (completed jobs)"
    )
    started_at: UtcDatetime
    completed_at: UtcDatetime | None
    duration_minutes: float | None
    error: str | None = None
    attempts: int | None = None
    source: str | None = None
    data_period: DataPeriod | None = None
    input_filename: str | None = None
    record_count: int | None = Field(None, description="records to score, counted at submission")
    records_scored: int = Field(0, description="records scored so far (the last progress report)")
    records_per_second: float | None = None
    cancel_requested: bool = False
    results: dict[FileFormat, str] | None = Field(
        None, description="download links of the scores (completed jobs): JSON lines or CSV"
    )


class BatchJobs(BaseModel):
    jobs: list[BatchJob]
    count: int


class BatchCancelRequested(BaseModel):
    """``POST /v1/ml/predict/batch/{job_id}/cancel`` (202): the cancel request is on Kafka."""

    job_id: str
    status: str
    cancel_requested: bool
    updated_at: UtcDatetime


document_zero_bounds(globals())
