"""Training jobs: the command and the job/model events, shared by every domain
(tabular models, lotto ensemble members, RL agents)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.common import UtcDatetime, document_zero_bounds
from schemas.envelope import Envelope, Payload

JobStatus = Literal["started", "running", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
Domain = Literal["tabular", "lotto", "rl"]
JobKind = Literal["train", "score"]
"""train: fits a model and registers it; score: scores records with a registered model and stores the scores"""
JOB_KINDS: tuple[str, ...] = ("train", "score")

# event types
TRAIN_REQUESTED = "modelbus.train.job.requested"
JOB_RUNNING = "modelbus.train.job.running"
JOB_PROGRESS = "modelbus.train.job.progress"
JOB_COMPLETED = "modelbus.train.job.completed"
JOB_FAILED = "modelbus.train.job.failed"
JOB_CANCEL_REQUESTED = "modelbus.train.job.cancel_requested"
JOB_CANCELLED = "modelbus.train.job.cancelled"
MODEL_REGISTERED = "modelbus.model.registered"

ATTEMPT_STRIDE = 1_000_000
"""Event sequence = attempt * ATTEMPT_STRIDE + step: a retried attempt always orders after the last."""


class TrainRequested(Payload):
    """Command on ``train.commands``: run this job (again, when ``attempt`` > 1)."""

    job_id: str
    domain: Domain
    kind: JobKind = Field("train", description="train: fit and register a model; score: batch scoring")
    model_type: str
    attempt: int = 1
    spec: dict[str, Any] = Field(description="domain request: data period, hyperparameters, machine, episodes…")
    estimated_duration_minutes: float
    record_count: int | None = None
    requested_by: str | None = None
    submitted_at: UtcDatetime
    retry_reason: str | None = Field(None, description="why a previous attempt did not finish")


class JobRunning(Payload):
    job_id: str
    attempt: int
    worker_id: str


class JobProgress(Payload):
    job_id: str
    attempt: int
    progress: float = Field(ge=0, le=100)
    figures: dict[str, Any] = Field(default_factory=dict)


class JobCompleted(Payload):
    job_id: str
    attempt: int
    model_id: str = Field(description="the model the job registered (train) or scored with (score)")
    metrics: dict[str, Any]
    result: dict[str, Any] = Field(
        default_factory=dict, description="hold-out split, baseline, episode series…; a scoring job's stored files"
    )


class JobFailed(Payload):
    job_id: str
    attempt: int
    reason: str


class JobCancelRequested(Payload):
    job_id: str
    requested_by: str | None = None


class JobCancelled(Payload):
    job_id: str
    attempt: int
    reason: str = "cancelled on request"


class ModelRegistered(Payload):
    model_id: str
    model_name: str
    domain: Domain
    model_type: str
    version: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    artifact_id: str
    artifact_sha256: str
    artifact_bytes: int
    holdout_predictions_id: str | None = Field(
        None,
        description="GridFS id (artifacts bucket) of the per-record hold-out predictions "
        "(ml.tabular.holdout.HoldoutPredictions) that POST /v1/ml/models/compare pairs models on; "
        "None for models without a labelled hold-out or trained before they were stored",
    )
    trained_at: UtcDatetime


MODEL_STATUS_CHANGED = "modelbus.model.status_changed"


class ModelStatusChanged(Payload):
    """A registry status change; applied only when ``status_version`` is the model's current one + 1."""

    model_id: str
    status: str
    previous_status: str
    status_version: int = Field(ge=2)
    actor: str | None = None
    reason: str | None = None
    deployment: dict[str, Any] | None = None


def status_changed(
    model_id: str,
    status: str,
    previous: str,
    version: int,
    *,
    source: str,
    actor: str | None,
    reason: str | None,
    deployment: dict[str, Any] | None = None,
    cause: Envelope | None = None,
) -> Envelope:
    """The ``model.events`` envelope of a model status change; its sequence is the new
    ``status_version`` (claimed first with ``infra.claims.claim_status``)."""
    payload = ModelStatusChanged(
        model_id=model_id,
        status=status,
        previous_status=previous,
        status_version=version,
        actor=actor,
        reason=reason,
        deployment=deployment,
    )
    return Envelope.wrap(MODEL_STATUS_CHANGED, model_id, payload, source=source, sequence=version, cause=cause)


class JobOutcome(BaseModel):
    """What a domain's job runner returns from its pool process: the job's figures and result."""

    metrics: dict[str, Any]
    result: dict[str, Any]


class TrainingOutcome(JobOutcome):
    """A training job's outcome: the artifact (with the sha256 the runner computed), the hold-out metrics, the job
    result and the model's lineage; optionally the per-record hold-out predictions stored beside the artifact.
    The worker registers the model."""

    artifact: bytes
    sha256: str
    lineage: dict[str, Any]
    holdout_predictions: bytes | None = None


class FilesOutcome(JobOutcome):
    """A job that used a registered model (``model_id``) and produced files (e.g. batch scores), which the worker
    stores in GridFS once it still holds the lease; ``result["files"]`` then names them."""

    model_id: str
    files: dict[str, bytes]


document_zero_bounds(globals())
