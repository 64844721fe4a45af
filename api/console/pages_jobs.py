"""``/ui/jobs``: training jobs of the three domains (the shared ``jobs`` projection), live from the
``train.commands`` and ``train.events`` topics through the hub; ``/ui/jobs/{job_id}``: one job, its
progress, its metrics beside their baselines, and cancel (through the domain's own API route)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import Parameter
from litestar.response import Template
from pymongo.asynchronous.database import AsyncDatabase

from api.console.hub import Hub, hub_of
from api.console.session import ConsoleSession, render
from api.security import required_scope
from infra import mongo
from schemas import jobs as job_schema

DomainFilter = Literal["tabular", "lotto", "rl"]
StatusFilter = Literal["started", "running", "completed", "failed", "cancelled", "active"]
LIVE_TOPICS = ("train.commands", "train.events")
REPLAY_SECONDS = 120.0
LOWER_IS_BETTER = frozenset({"false_positive_rate", "loss", "latency", "mean_latency", "overload", "cost"})

CANCEL_PATHS = {
    ("tabular", "train"): "/v1/ml/train/{job_id}/cancel",
    ("tabular", "score"): "/v1/ml/predict/batch/{job_id}/cancel",
    ("rl", "train"): "/api/v1/training/{job_id}/cancel",
}
"""The API route that cancels a job of each domain and kind (lotto member training has none)."""

JOB_FIELDS = {
    "job_id": 1,
    "domain": 1,
    "kind": 1,
    "model_type": 1,
    "status": 1,
    "progress": 1,
    "model_id": 1,
    "submitted_at": 1,
    "completed_at": 1,
    "duration_minutes": 1,
    "cancel_requested": 1,
    "error": 1,
    "record_count": 1,
    "estimated_duration_minutes": 1,
}


async def live_from(hub: Hub) -> dict[str, int]:
    """Where each page's streams start: the last ``REPLAY_SECONDS`` of job events again (the projection the page
    reads may not have applied them yet; replaying is harmless)."""
    started = [await hub.try_ensure(topic) for topic in LIVE_TOPICS]
    if None in started:  # Kafka unreachable: the page renders MongoDB's view, its streams will say they are off
        return {}
    return {topic: hub.since(topic, REPLAY_SECONDS) for topic in LIVE_TOPICS}


def cancel_path(doc: dict[str, Any]) -> str | None:
    template = CANCEL_PATHS.get((doc.get("domain", ""), doc.get("kind") or "train"))
    return template.format(job_id=doc["job_id"]) if template else None


def metric_rows(metrics: dict[str, Any] | None, baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each numeric metric beside the baseline's value of the same name (None when the baseline has none)."""
    baseline = baseline if isinstance(baseline, dict) else {}
    rows = []
    for name, value in (metrics or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        base = baseline.get(name)
        base = base if isinstance(base, (int, float)) and not isinstance(base, bool) else None
        delta = None if base is None else value - base
        better = None if not delta else (delta < 0) == (name in LOWER_IS_BETTER)
        rows.append({"name": name, "value": value, "baseline": base, "delta": delta, "better": better})
    return rows


@get("/jobs", name="console:jobs")
async def jobs_page(
    request: Request[Any, Any, Any],
    console: ConsoleSession,
    db: AsyncDatabase,
    domain: DomainFilter | None = None,
    status: StatusFilter | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 200,
) -> Template:
    hub = hub_of(request.app)
    seqs = await live_from(hub)  # before reading MongoDB: no event falls in between
    query: dict[str, Any] = {}
    if domain:
        query["domain"] = domain
    if status == "active":
        query["status"] = {"$nin": sorted(job_schema.TERMINAL)}
    elif status:
        query["status"] = status
    docs = await db[mongo.JOBS].find(query, JOB_FIELDS).sort("submitted_at", -1).limit(limit).to_list(None)
    for doc in docs:
        doc["cancel_path"] = cancel_path(doc)
    return render(
        "jobs.html",
        console,
        "jobs",
        "Jobs",
        jobs=docs,
        domain=domain or "",
        status=status or "",
        limit=limit,
        seqs=seqs,
        can_cancel=console.can(required_scope("POST", "/v1/ml/train/x/cancel")),
    )


@get("/jobs/{job_id:str}", name="console:job")
async def job_page(
    request: Request[Any, Any, Any], console: ConsoleSession, db: AsyncDatabase, job_id: str
) -> Template:
    hub = hub_of(request.app)
    seqs = await live_from(hub)
    doc = await db[mongo.JOBS].find_one({"_id": job_id})
    if doc is None:
        raise NotFoundException(f"no job {job_id!r}")
    result = doc.get("result") or {}
    path = cancel_path(doc)
    return render(
        "job_detail.html",
        console,
        "jobs",
        f"Job {job_id}",
        job=doc,
        result=result,
        spec=doc.get("spec") or {},
        metrics=metric_rows(doc.get("metrics"), result.get("baseline")),
        other_metrics={k: v for k, v in (doc.get("metrics") or {}).items() if not isinstance(v, (int, float))},
        held_out=result.get("held_out"),
        holdout=result.get("holdout"),
        cancel_path=path,
        can_cancel=path is not None and console.can(required_scope("POST", path)),
        seqs=seqs,
    )


HANDLERS = [jobs_page, job_page]
