"""The topic catalog: every topic modelbus uses, what it carries and how it is keyed.

Names here are short; the real name is ``MODELBUS_TOPIC_PREFIX`` + short name
(``modelbus.train.commands`` by default). The key is always the entity id, so all events
of one job/model/canary/prediction keep their order in one partition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from schemas import jobs


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    key: str
    payloads: dict[str, type[BaseModel]] = field(default_factory=dict)
    """event type -> payload model"""
    envelope: bool = True
    """False only for the dead-letter topic, which carries the raw failed message."""
    one_partition: bool = False
    """Created with one partition instead of ``MODELBUS_TOPIC_PARTITIONS``: topics that carry a few events
    a minute (registry, deployments, canary verdicts, draws, dead letters), topics only ever read by one
    consumer per group (job lifecycle and RL episodes, read by the projector and the archive), and
    ``predict.replies``, which every API process reads whole. On Tansu every partition a consumer reads
    adds to the cost of each of its fetches, even empty ones; the topics that spread work over processes
    (commands, requests, served predictions, feedback, records) keep their partitions."""
    archived: bool = True
    """False for request/reply plumbing: the durable record of a prediction is its ``predict.served``
    event (and of a generation, its stored record), so the archive skips the transient messages."""


PLATFORM_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "train.commands",
        "Commands to run a training job (first attempt and retries).",
        "job_id",
        {jobs.TRAIN_REQUESTED: jobs.TrainRequested},
    ),
    TopicSpec(
        "train.events",
        "Job lifecycle: running, progress (throttled), completed, failed, cancel requested, cancelled.",
        "job_id",
        {
            jobs.JOB_RUNNING: jobs.JobRunning,
            jobs.JOB_PROGRESS: jobs.JobProgress,
            jobs.JOB_COMPLETED: jobs.JobCompleted,
            jobs.JOB_FAILED: jobs.JobFailed,
            jobs.JOB_CANCEL_REQUESTED: jobs.JobCancelRequested,
            jobs.JOB_CANCELLED: jobs.JobCancelled,
        },
        one_partition=True,
    ),
    TopicSpec(
        "model.events",
        "Registry: a model was registered (artifact in GridFS) or changed status.",
        "model_id",
        {jobs.MODEL_REGISTERED: jobs.ModelRegistered, jobs.MODEL_STATUS_CHANGED: jobs.ModelStatusChanged},
        one_partition=True,
    ),
    TopicSpec(
        "deploy.commands",
        "Deployment steps: staging, canary start/increase, production, rollback; RL agent deploy/undeploy.",
        "model_id",
        one_partition=True,
    ),
    TopicSpec(
        "deploy.events",
        "Deployment changes with actor, reason and metric snapshot (the audit trail).",
        "model_id",
        one_partition=True,
    ),
    TopicSpec(
        "predict.requests",
        "Prediction requests with reply topic and correlation id.",
        "prediction_id",
        archived=False,
    ),
    TopicSpec(
        "predict.replies",
        "Prediction replies, matched to requests by correlation id.",
        "prediction_id",
        archived=False,
        one_partition=True,
    ),
    TopicSpec(
        "predict.served",
        "One event per prediction served (arm baseline or canary) and per prediction a shadow scored (arm "
        "shadow, same prediction id): model, score, latency, error.",
        "prediction_id",
    ),
    TopicSpec(
        "dlq",
        "Dead letters: the failed message as received, the error in headers.",
        "original key",
        envelope=False,
        one_partition=True,
    ),
)
"""The platform's topics; the domains add theirs and their event types on shared topics (``register``)."""

TOPICS: dict[str, TopicSpec] = {spec.name: spec for spec in PLATFORM_TOPICS}
"""the whole catalog once the composition root has registered the domains (``bootstrap.install``)"""


def register(specs: Iterable[TopicSpec], payloads: Mapping[str, Mapping[str, type[BaseModel]]]) -> None:
    """Adds a domain's own topics and its event types on the platform's topics (idempotent)."""
    for spec in specs:
        known = TOPICS.get(spec.name)
        if known is None:
            TOPICS[spec.name] = spec
        elif known != spec:
            raise ValueError(f"topic {spec.name!r} is declared twice, differently")
    for name, types in payloads.items():
        TOPICS[name].payloads.update(types)
