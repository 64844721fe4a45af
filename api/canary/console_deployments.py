"""Console, part B: ``/ui/deployments``: production, canary and shadow of each family at a glance, the recent
canaries and shadows, and the audit trail as a timeline.

Reads the same projections as ``GET /v1/ml/deploy/current`` and ``/history`` (``deployments``, ``canaries``,
``shadows``, ``deploy_history``) and the registry (``models``) for names, versions and metrics."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, get
from litestar.response import Template
from pymongo.asynchronous.database import AsyncDatabase

from api.console.hub import live_after
from api.console.session import ConsoleSession, fmt_time, render
from infra import mongo
from schemas import deploy

log = logging.getLogger("modelbus.console")

HISTORY_LIMIT = 100
RECENT_LIMIT = 20
ACTION_LABELS = {
    "staging": "staged",
    "canary_started": "canary started",
    "traffic_increased": "traffic increased",
    "canary_rolled_back": "canary rolled back",
    "production": "promoted to production",
    "emergency_rollback": "emergency rollback",
    "rollback": "rolled back to an earlier model",
    "shadow_started": "shadow started",
    "shadow_stopped": "shadow stopped",
}
ACTION_TONE = {
    "production": "good",
    "canary_started": "info",
    "traffic_increased": "info",
    "shadow_started": "info",
    "emergency_rollback": "bad",
    "rollback": "bad",
    "canary_rolled_back": "bad",
}


async def _models(db: AsyncDatabase, ids: set[str]) -> dict[str, dict[str, Any]]:
    ids.discard("")
    if not ids:
        return {}
    projection = {"model_name": 1, "version": 1, "model_type": 1, "status": 1, "metrics": 1, "trained_at": 1}
    out = {}
    async for doc in db[mongo.MODELS].find({"_id": {"$in": sorted(ids)}}, projection):
        metrics = doc.get("metrics") or {}
        out[doc["_id"]] = {
            "model_id": doc["_id"],
            "name": doc.get("model_name"),
            "version": doc.get("version"),
            "type": doc.get("model_type"),
            "status": doc.get("status"),
            "headline": {k: metrics[k] for k in ("auc", "accuracy", "f1", "precision", "recall") if k in metrics},
        }
    return out


def timeline_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """One audit-trail step, shaped for the timeline."""
    state = doc.get("state") or {}
    metrics = doc.get("metrics") or {}
    snapshot = metrics.get("canary") if isinstance(metrics.get("canary"), dict) else metrics
    return {
        "event_id": doc.get("event_id") or doc.get("_id"),
        "time": fmt_time(doc.get("time")),
        "action": doc.get("action"),
        "label": ACTION_LABELS.get(doc.get("action") or "", doc.get("action")),
        "tone": ACTION_TONE.get(doc.get("action") or "", "plain"),
        "model_id": doc.get("model_id"),
        "actor": doc.get("actor") or "",
        "reason": doc.get("reason") or "",
        "canary_id": doc.get("canary_id"),
        "shadow_id": doc.get("shadow_id"),
        "percentage": doc.get("percentage"),
        "sample_percentage": doc.get("sample_percentage"),
        "changes": [f"{c['model_id']}: {c['from_status']} → {c['to_status']}" for c in doc.get("changes") or []],
        "production": state.get("production"),
        "version": state.get("version"),
        "verdict": (snapshot or {}).get("recommendation"),
        "verdict_reason": (snapshot or {}).get("reason_en"),
    }


def _analysis_row(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    verdict = doc.get("verdict") or {}
    return {
        "id": doc["_id"],
        "kind": kind,
        "model_id": doc.get("model_id"),
        "baseline_model_id": doc.get("baseline_model_id"),
        "status": doc.get("status"),
        "percentage": doc.get("percentage") if kind == "canary" else doc.get("sample_percentage"),
        "started_at": fmt_time(doc.get("started_at")),
        "ended_at": fmt_time(doc.get("ended_at")),
        "recommendation": verdict.get("recommendation") or "hold",
        "reason": verdict.get("reason_en") or "",
    }


async def deployments_view(db: AsyncDatabase, *, history_limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    """Everything ``deployments.html`` shows: per family its production / canary / shadow / staging / previous
    models, the recent canaries and shadows, and the audit trail (newest first)."""
    families = [doc async for doc in db[mongo.DEPLOYMENTS].find({}).sort("_id", 1)]
    if not any(f["_id"] == deploy.FAMILY for f in families):
        families.insert(0, {"_id": deploy.FAMILY, "version": 0, "production": None, "previous": [], "staging": []})
    canaries = [
        _analysis_row(d, "canary") async for d in db[mongo.CANARIES].find({}).sort("started_at", -1).limit(RECENT_LIMIT)
    ]
    shadows = [
        _analysis_row(d, "shadow") async for d in db[mongo.SHADOWS].find({}).sort("started_at", -1).limit(RECENT_LIMIT)
    ]
    history = [
        timeline_entry(d) async for d in db[mongo.DEPLOY_HISTORY].find({}).sort([("time", -1)]).limit(history_limit)
    ]
    ids: set[str] = set()
    for fam in families:
        ids |= {fam.get("production") or "", *(fam.get("previous") or []), *(fam.get("staging") or [])}
        for part in ("canary", "shadow"):
            if fam.get(part):
                ids |= {fam[part].get("model_id") or "", fam[part].get("baseline_model_id") or ""}
    models = await _models(db, ids)
    out_families = []
    for fam in families:
        canary, shadow = fam.get("canary"), fam.get("shadow")
        out_families.append(
            {
                "family": fam["_id"],
                "version": fam.get("version", 0),
                "changed_at": fmt_time(fam.get("changed_at")),
                "last_action": ACTION_LABELS.get(fam.get("last_action") or "", fam.get("last_action") or ""),
                "production": models.get(fam.get("production") or "")
                or ({"model_id": fam["production"]} if fam.get("production") else None),
                "canary": canary
                and {**canary, "model": models.get(canary.get("model_id") or "", {"model_id": canary.get("model_id")})},
                "shadow": shadow
                and {**shadow, "model": models.get(shadow.get("model_id") or "", {"model_id": shadow.get("model_id")})},
                "staging": [models.get(m, {"model_id": m}) for m in fam.get("staging") or []],
                "previous": [models.get(m, {"model_id": m}) for m in reversed(fam.get("previous") or [])],
            }
        )
    versions = {f["family"]: f["version"] for f in out_families}
    return {
        "families": out_families,
        "canaries": canaries,
        "shadows": shadows,
        "history": history,
        "versions": versions,
    }


# -- handlers -------------------------------------------------------------------------------------------------


@get("/deployments", name="console:deployments")
async def deployments_page(request: Request[Any, Any, Any], console: ConsoleSession, db: AsyncDatabase) -> Template:
    live = await live_after(request, ("deploy.events",))
    view = await deployments_view(db) | {"live": live}
    return render("deployments.html", console, "deployments", "Deployments", view=view)


HANDLERS = [deployments_page]
