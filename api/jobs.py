"""The API side of the job platform, the same for every domain: finding a job, submitting a training command (the
one ``TrainRequested`` builder), estimating its duration from the past jobs of its type, and the status fields
every job view starts from."""

from __future__ import annotations

import math
from typing import Any

from litestar import Request
from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase

from api.security import principal_of
from infra import mongo
from producers.jobs import request_cancel, submit_training
from producers.publisher import EventPublisher
from schemas import jobs
from schemas.common import new_id, utcnow
from schemas.envelope import Envelope
from schemas.errors import ApiError


def of_kind(kind: str = "train") -> dict[str, Any]:
    """The query part selecting jobs of ``kind`` (a job stored before kinds existed is a training job)."""
    if kind == "train":
        return {"kind": {"$nin": [k for k in jobs.JOB_KINDS if k != "train"]}}
    return {"kind": kind}


async def find_job(
    db: AsyncDatabase,
    job_id: str,
    domain: str,
    *,
    kind: str = "train",
    code: str = "JOB_NOT_FOUND",
    field: str = "job_id",
) -> dict[str, Any]:
    """The job document of ``domain`` and ``kind``, or 404 ``code``."""
    doc = await db[mongo.JOBS].find_one({"_id": job_id, "domain": domain, **of_kind(kind)})
    if doc is None:
        what = "training task" if field == "task_id" else "training job" if kind == "train" else f"{kind} job"
        raise ApiError(404, code, f"no {domain} {what} {job_id!r}", field=field)
    return doc


async def estimate_minutes(
    db: AsyncDatabase,
    domain: str,
    model_type: str,
    units: float,
    *,
    default_minutes_per_unit: float,
    unit_field: str | None = None,
    kind: str = "train",
    history: int = 20,
    step: float = 0.1,
) -> float:
    """``units`` (records, episodes; 1 for a job of fixed size) × minutes per unit, learnt from the last
    ``history`` completed jobs of this domain and type (``unit_field`` names a job's units in its document; none:
    one unit per job), rounded up to ``step``; ``default_minutes_per_unit`` before the first."""
    projection = {"duration_minutes": 1, **({unit_field: 1} if unit_field else {})}
    query = {"domain": domain, "model_type": model_type, "status": "completed", **of_kind(kind)}
    rates: list[float] = []
    async for doc in db[mongo.JOBS].find(query, projection).sort("submitted_at", -1).limit(history):
        job_units = _field(doc, unit_field) if unit_field else 1
        if doc.get("duration_minutes") is not None and job_units:
            rates.append(doc["duration_minutes"] / float(job_units))
    rate = sum(rates) / len(rates) if rates else default_minutes_per_unit
    return max(step, math.ceil(rate * units / step - 1e-9) * step)


def _field(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = (doc or {}).get(part)  # type: ignore[assignment]
    return doc


async def submit(
    request: Request[Any, Any, Any],
    publisher: EventPublisher,
    db: AsyncDatabase,
    *,
    domain: str,
    model_type: str,
    spec: BaseModel,
    estimated_minutes: float,
    record_count: int | None = None,
    id_prefix: str = "job",
    kind: jobs.JobKind = "train",
    job_id: str | None = None,
) -> jobs.TrainRequested:
    """Builds the first attempt's command (``spec``: the domain's job spec model), puts it on ``train.commands``
    (acknowledged by Kafka) and in the job projection before the caller answers 202."""
    principal = principal_of(request)
    command = jobs.TrainRequested(
        job_id=job_id or new_id(id_prefix),
        domain=domain,  # type: ignore[arg-type]
        kind=kind,
        model_type=model_type,
        attempt=1,
        spec=spec.model_dump(mode="json"),
        estimated_duration_minutes=round(estimated_minutes, 2),
        record_count=record_count,
        requested_by=principal.key_id if principal else None,
        submitted_at=utcnow(),
    )
    await submit_training(publisher, db, command)
    return command


def status_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields every job view shares (``error`` only on a failed or cancelled job); times as stored."""
    return {
        "job_id": doc["job_id"],
        "status": doc["status"],
        "model_type": doc["model_type"],
        "model_id": doc.get("model_id"),
        "progress": doc.get("progress", 0.0),
        "metrics": doc.get("metrics"),
        "started_at": doc["started_at"],
        "completed_at": doc.get("completed_at"),
        "duration_minutes": doc.get("duration_minutes"),
        "error": doc.get("error") if doc["status"] in ("failed", "cancelled") else None,
    }


async def cancel(
    request: Request[Any, Any, Any],
    publisher: EventPublisher,
    db: AsyncDatabase,
    doc: dict[str, Any],
    *,
    code: str = "JOB_FINISHED",
    field: str = "job_id",
    what: str = "job",
) -> Envelope:
    """Requests the cancel of a job that has not finished (409 ``code`` when it has); the worker running it stops
    at its next progress step."""
    if doc["status"] in jobs.TERMINAL:
        raise ApiError(409, code, f"{what} {doc['job_id']} is already {doc['status']}", field=field)
    principal = principal_of(request)
    return await request_cancel(publisher, db, doc["job_id"], principal.key_id if principal else None)
