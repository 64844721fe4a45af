"""The topic catalog: every topic modelbus uses, what it carries and how it is keyed.

Names here are short; the real name is ``MODELBUS_TOPIC_PREFIX`` + short name
(``modelbus.train.commands`` by default). The key is always the entity id, so all events
of one job/model/canary/prediction keep their order in one partition."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from schemas import data, deploy, jobs, lotto, rl
from schemas.envelope import Payload


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


TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in [
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
            {jobs.MODEL_REGISTERED: jobs.ModelRegistered, rl.MODEL_STATUS_CHANGED: rl.ModelStatusChanged},
            one_partition=True,
        ),
        TopicSpec(
            "deploy.commands",
            "Deployment steps: staging, canary start/increase, production, rollback; RL agent deploy/undeploy.",
            "model_id",
            {rl.DEPLOY_REQUESTED: rl.DeployRequested, rl.UNDEPLOY_REQUESTED: rl.UndeployRequested},
            one_partition=True,
        ),
        TopicSpec(
            "deploy.events",
            "Deployment changes with actor, reason and metric snapshot (the audit trail).",
            "model_id",
            {
                rl.DEPLOYED: rl.DeploymentChanged,
                rl.DEPLOY_FAILED: rl.DeploymentChanged,
                rl.UNDEPLOYED: rl.DeploymentChanged,
                deploy.DEPLOY_STEP: deploy.DeploymentStep,
            },
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
            {rl.ACT_SERVED: rl.ActServed, deploy.PREDICTION_SERVED: deploy.PredictionServed},
        ),
        TopicSpec(
            "predict.feedback",
            "Ground truth labels arriving after the prediction.",
            "prediction_id",
            {deploy.PREDICTION_FEEDBACK: deploy.PredictionFeedback},
        ),
        TopicSpec(
            "canary.metrics",
            "Canary and shadow evidence per arm after each analysis window, with the anytime-valid intervals.",
            "canary_id",
            {deploy.CANARY_METRICS: deploy.CanaryMetrics, deploy.SHADOW_METRICS: deploy.CanaryMetrics},
            one_partition=True,
        ),
        TopicSpec(
            "canary.recommendations",
            "Canary verdicts (proceed / hold / rollback) and shadow verdicts (promote_to_canary / hold / reject) "
            "on every change.",
            "canary_id",
            {
                deploy.CANARY_RECOMMENDATION: deploy.CanaryRecommendation,
                deploy.SHADOW_RECOMMENDATION: deploy.CanaryRecommendation,
            },
            one_partition=True,
        ),
        TopicSpec(
            "data.records",
            "Time-stamped transaction records: API batches (1,000 per message) and single streamed records.",
            "batch chunk or record id",
            {data.RECORDS_BATCH: data.RecordsBatch, data.RECORD: data.RecordIngested},
        ),
        TopicSpec(
            "lotto.draws",
            "Lotto draws recorded (imported through the API or the synthetic demo), one event per round.",
            "round",
            {lotto.DRAW_RECORDED: lotto.DrawRecorded},
            one_partition=True,
        ),
        TopicSpec(
            "rl.episodes",
            "Per-episode RL training metrics: reward, steps, latency, cost, overload, loss.",
            "job_id",
            {rl.EPISODE_RECORDED: rl.EpisodeRecorded},
            one_partition=True,
        ),
        TopicSpec(
            "dlq",
            "Dead letters: the failed message as received, the error in headers.",
            "original key",
            envelope=False,
            one_partition=True,
        ),
    ]
}

PAYLOAD_TYPES: dict[str, type[BaseModel]] = {
    event_type: model for spec in TOPICS.values() for event_type, model in spec.payloads.items()
}


def payload_model(event_type: str) -> type[BaseModel]:
    """The payload model of an event type (the generic ``Payload`` for types not in the catalog)."""
    return PAYLOAD_TYPES.get(event_type, Payload)
