"""``/ui/models``: the registry of every family (tabular, lotto, RL) from the ``models`` projection, live from
``model.events``; ``/ui/models/{model_id}``: lineage (job, data period, hyperparameters, library versions),
metrics and the status history; ``/ui/models/compare?a=..&b=..``: two models side by side, the paired
bootstrap of ``POST /v1/ml/models/compare`` (fetched by the page from the API itself) drawn with uPlot."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import Parameter
from litestar.response import Template
from pymongo.asynchronous.database import AsyncDatabase

from api.console.hub import hub_of
from api.console.session import ConsoleSession, render
from infra import mongo

DomainFilter = Literal["tabular", "lotto", "rl"]
LIST_FIELDS = {
    "model_id": 1,
    "model_name": 1,
    "domain": 1,
    "model_type": 1,
    "version": 1,
    "status": 1,
    "metrics": 1,
    "trained_at": 1,
    "deployed_at": 1,
    "lineage.job_id": 1,
    "lineage.data_period": 1,
    "history": 1,
}
KEY_METRICS = {
    "tabular": ("f1_score", "roc_auc", "precision", "recall", "anomaly_rate"),
    "lotto": ("prediction_accuracy", "mean_matches", "hit_rate_3plus"),
    "rl": ("normalised_score", "mean_reward", "latency"),
}


def key_metrics(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    metrics = doc.get("metrics") or {}
    names = [n for n in KEY_METRICS.get(doc.get("domain", ""), ()) if n in metrics]
    if not names:
        names = [n for n, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)][:3]
    return [(n, metrics[n]) for n in names]


@get("/models", name="console:models")
async def models_page(
    request: Request[Any, Any, Any],
    console: ConsoleSession,
    db: AsyncDatabase,
    domain: DomainFilter | None = None,
    status: Annotated[str | None, Parameter(max_length=40)] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 200,
) -> Template:
    seq = await hub_of(request.app).try_ensure("model.events")
    query: dict[str, Any] = {}
    if domain:
        query["domain"] = domain
    if status:
        query["status"] = status
    docs = await db[mongo.MODELS].find(query, LIST_FIELDS).sort("trained_at", -1).limit(limit).to_list(None)
    for doc in docs:
        doc["key_metrics"] = key_metrics(doc)
    statuses = sorted({d["status"] for d in docs} | ({status} if status else set()))
    return render(
        "models.html",
        console,
        "models",
        "Models",
        models=docs,
        domain=domain or "",
        status=status or "",
        statuses=statuses,
        seq=seq,
    )


@get("/models/compare", name="console:models-compare")
async def compare_page(
    console: ConsoleSession,
    db: AsyncDatabase,
    a: Annotated[str | None, Parameter(max_length=200)] = None,
    b: Annotated[str | None, Parameter(max_length=200)] = None,
) -> Template:
    choices = (
        await db[mongo.MODELS]
        .find({"domain": "tabular"}, {"model_id": 1, "model_name": 1, "metrics.f1_score": 1, "trained_at": 1})
        .sort("trained_at", -1)
        .limit(200)
        .to_list(None)
    )
    found = {d["_id"]: d async for d in db[mongo.MODELS].find({"_id": {"$in": [x for x in (a, b) if x]}})}
    left, right = found.get(a or ""), found.get(b or "")
    names = sorted(
        {n for d in (left, right) if d for n, v in (d.get("metrics") or {}).items() if isinstance(v, (int, float))}
    )
    return render(
        "models_compare.html",
        console,
        "models",
        "Compare models",
        choices=choices,
        a=a or "",
        b=b or "",
        left=left,
        right=right,
        metric_names=names,
        missing=[x for x in (a, b) if x and x not in found],
    )


@get("/models/{model_id:str}", name="console:model")
async def model_page(console: ConsoleSession, db: AsyncDatabase, model_id: str) -> Template:
    doc = await db[mongo.MODELS].find_one({"_id": model_id})
    if doc is None:
        raise NotFoundException(f"no model {model_id!r}")
    lineage = dict(doc.get("lineage") or {})
    job = None
    if lineage.get("job_id"):
        job = await db[mongo.JOBS].find_one(
            {"_id": lineage["job_id"]}, {"status": 1, "domain": 1, "submitted_at": 1, "duration_minutes": 1}
        )
    siblings = (
        await db[mongo.MODELS]
        .find(
            {"domain": doc.get("domain"), "model_type": doc.get("model_type")},
            {"model_id": 1, "version": 1, "status": 1, "trained_at": 1},
        )
        .sort("trained_at", -1)
        .limit(20)
        .to_list(None)
    )
    return render(
        "models_detail.html",
        console,
        "models",
        f"Model {doc.get('model_name', model_id)}",
        model=doc,
        lineage=lineage,
        job=job,
        versions=siblings,
        metrics={k: v for k, v in (doc.get("metrics") or {}).items()},
        history=doc.get("history") or [],
    )


HANDLERS = [models_page, compare_page, model_page]
