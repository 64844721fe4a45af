"""Submitting a training job, the same way for every domain (fraud models, lotto, RL)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from infra.projections import apply_events
from producers.publisher import EventPublisher
from schemas import jobs
from schemas.envelope import Envelope


async def submit_training(publisher: EventPublisher, db: AsyncDatabase, command: jobs.TrainRequested) -> Envelope:
    """Publishes the command on ``train.commands`` (acknowledged by Kafka before this returns), then
    applies it to the job projection so the caller can read its own write at once (the projector
    applies the same event again, a no-op)."""
    env = Envelope.wrap(
        jobs.TRAIN_REQUESTED,
        command.job_id,
        command,
        source="modelbus/api",
        sequence=command.attempt * jobs.ATTEMPT_STRIDE,
        correlationid=command.job_id,
    )
    await publisher.publish("train.commands", env, key=command.job_id)
    await apply_events(db, [env])
    return env


async def request_cancel(
    publisher: EventPublisher, db: AsyncDatabase, job_id: str, requested_by: str | None
) -> Envelope:
    """Publishes the (commutative) cancel flag for a job and applies it to the job projection; the
    worker running the job reads the flag and stops the training at its next progress step."""
    env = Envelope.wrap(
        jobs.JOB_CANCEL_REQUESTED,
        job_id,
        jobs.JobCancelRequested(job_id=job_id, requested_by=requested_by),
        source="modelbus/api",
        correlationid=job_id,
    )
    await publisher.publish("train.events", env, key=job_id)
    await apply_events(db, [env])
    return env
