"""The deployment read models: each family's deployment, canaries, shadows, their analysis windows and the
audit trail. The prediction records and strata are folded by the analyser itself (``records``)."""

from __future__ import annotations

from typing import Any

from infra import mongo
from infra.projections import Doc, Projection
from schemas import deploy
from schemas.envelope import Envelope


def reduce_deployment(doc: Doc | None, env: Envelope) -> Doc | None:
    """A family's deployment state (``_id`` = family): the state carried by its latest step."""
    if env.type != deploy.DEPLOY_STEP:
        return None
    step = env.data
    state = step["state"]
    if doc is not None and doc.get("version", 0) >= state["version"]:
        return None
    return {"_id": env.subject, **state, "last_action": step["action"], "last_event_id": env.id, "changed_at": env.time}


def canary_doc_id(env: Envelope) -> str:
    return str(env.data.get("canary_id") or "")


def shadow_doc_id(env: Envelope) -> str:
    """A shadow's deployment steps name it in ``shadow_id``; its metrics and verdicts in ``canary_id``."""
    if env.type == deploy.DEPLOY_STEP:
        return str(env.data.get("shadow_id") or "")
    return str(env.data.get("canary_id") or "")


def _analysis_results(doc: Doc, env: Envelope) -> Doc | None:
    """A canary's or shadow's latest metrics and verdict (newer windows only)."""
    data = env.data
    end = data["window_end"]
    if env.type in (deploy.CANARY_METRICS, deploy.SHADOW_METRICS):
        if doc.get("metrics_window_end") is not None and end <= doc["metrics_window_end"]:
            return None
        keys = (
            "window_start", "window_end", "totals", "metrics", "comparison", "recommendation", "reason_en",
            "reason_ko", "strata",
        )
        return doc | {"metrics": {k: data.get(k) for k in keys}, "metrics_window_end": end}
    if env.type in (deploy.CANARY_RECOMMENDATION, deploy.SHADOW_RECOMMENDATION):
        if doc.get("verdict_window_end") is not None and end <= doc["verdict_window_end"]:
            return None
        verdict = {k: data.get(k) for k in ("recommendation", "previous", "reason_en", "reason_ko", "numbers")}
        return doc | {"verdict": verdict | {"at": env.time}, "verdict_window_end": end}
    return None


def _analysis_doc(kind: str, analysis_id: str, data: dict[str, Any], env: Envelope, **fields: Any) -> Doc:
    return {
        "_id": analysis_id,
        "kind": kind,
        "family": data.get("family"),
        "model_id": data["model_id"],
        "status": "monitoring",
        "policy": data.get("policy") or {},
        "started_at": env.time,
        "started_by": data.get("actor"),
        "ended_at": None,
        "end_action": None,
        "metrics": None,
        "metrics_window_end": None,
        "verdict": None,
        "verdict_window_end": None,
        "last_version": data["state"]["version"],
        **fields,
    }


def reduce_canary(doc: Doc | None, env: Envelope) -> Doc | None:
    """One document per canary: its steps and end from ``deploy.events``, its latest evidence and verdict from
    ``canary.metrics`` / ``canary.recommendations`` (newer windows only)."""
    data = env.data
    if not data.get("canary_id"):
        return None
    if env.type == deploy.DEPLOY_STEP:
        version = data["state"]["version"]
        if data["action"] == "canary_started":
            if doc is not None:
                return None
            canary = data["state"]["canary"] or {}
            return _analysis_doc(
                "canary",
                data["canary_id"],
                data,
                env,
                canary_id=data["canary_id"],
                baseline_model_id=canary.get("baseline_model_id"),
                percentage=data.get("percentage"),
                auto=canary.get("auto", False),
                monitoring_duration_minutes=data.get("monitoring_duration_minutes"),
                step_at=env.time,
                steps=[{"percentage": data.get("percentage"), "at": env.time, "actor": data.get("actor")}],
            )
        if doc is None or version <= doc.get("last_version", 0):
            return None
        new = doc | {"last_version": version}
        if data["action"] == "traffic_increased" and data.get("percentage") is not None:
            new["percentage"] = data["percentage"]
            new["step_at"] = env.time
            new["steps"] = [
                *doc.get("steps", []),
                {"percentage": data["percentage"], "at": env.time, "actor": data.get("actor")},
            ]
        if data.get("canary_status") and data["canary_status"] != "monitoring":
            new |= {"status": data["canary_status"], "ended_at": env.time, "end_action": data["action"]}
            if data["canary_status"] == "promoted":
                new["percentage"] = 100.0
        return new
    if doc is None or env.type not in (deploy.CANARY_METRICS, deploy.CANARY_RECOMMENDATION):
        return None
    return _analysis_results(doc, env)


def reduce_shadow(doc: Doc | None, env: Envelope) -> Doc | None:
    """One document per shadow deployment: started, stopped (or promoted to a canary), its evidence and verdict."""
    data = env.data
    if env.type == deploy.DEPLOY_STEP:
        if not data.get("shadow_id"):
            return None
        version = data["state"]["version"]
        if data["action"] == "shadow_started":
            if doc is not None:
                return None
            shadow = data["state"]["shadow"] or {}
            return _analysis_doc(
                "shadow",
                data["shadow_id"],
                data,
                env,
                shadow_id=data["shadow_id"],
                baseline_model_id=shadow.get("baseline_model_id"),
                sample_percentage=data.get("sample_percentage"),
            )
        if doc is None or version <= doc.get("last_version", 0):
            return None
        new = doc | {"last_version": version}
        if data.get("shadow_status") and data["shadow_status"] != "monitoring":
            new |= {"status": data["shadow_status"], "ended_at": env.time, "end_action": data["action"]}
        return new
    if doc is None or env.type not in (deploy.SHADOW_METRICS, deploy.SHADOW_RECOMMENDATION):
        return None
    return _analysis_results(doc, env)


def reduce_canary_window(doc: Doc | None, env: Envelope) -> Doc | None:
    """One document per metrics event of a canary or shadow: its evidence over time (``_id`` = event id)."""
    if doc is not None or env.type not in (deploy.CANARY_METRICS, deploy.SHADOW_METRICS):
        return None
    data = env.data
    return {
        "_id": env.id,
        "canary_id": data["canary_id"],
        "kind": data.get("kind", "canary"),
        "window_start": data["window_start"],
        "window_end": data["window_end"],
        "comparison": data.get("comparison", []),
        "metrics": data.get("metrics"),
        "recommendation": data.get("recommendation"),
        "arms": {
            arm: {k: figures.get(k) for k in ("requests", "errors", "labelled", "waiting_for_label", "accuracy")}
            for arm, figures in (data.get("totals") or {}).items()
        },
    }


def history_doc_id(env: Envelope) -> str:
    return env.id


def reduce_deploy_history(doc: Doc | None, env: Envelope) -> Doc | None:
    """The audit trail: one immutable document per deployment step (``_id`` = event id)."""
    if env.type != deploy.DEPLOY_STEP or doc is not None:
        return None
    data = env.data
    return {
        "_id": env.id,
        "event_id": env.id,
        "time": env.time,
        "family": data.get("family"),
        "action": data["action"],
        "model_id": data.get("model_id"),
        "actor": data.get("actor"),
        "reason": data.get("reason"),
        "canary_id": data.get("canary_id"),
        "shadow_id": data.get("shadow_id"),
        "percentage": data.get("percentage"),
        "sample_percentage": data.get("sample_percentage"),
        "changes": data.get("changes", []),
        "metrics": data.get("metrics"),
        "state": data["state"],
    }


PROJECTIONS = (
    Projection(mongo.DEPLOYMENTS, reduce_deployment, (deploy.DEPLOY_STEP,)),
    Projection(
        mongo.CANARIES,
        reduce_canary,
        (deploy.DEPLOY_STEP, deploy.CANARY_METRICS, deploy.CANARY_RECOMMENDATION),
        canary_doc_id,
    ),
    Projection(
        mongo.SHADOWS,
        reduce_shadow,
        (deploy.DEPLOY_STEP, deploy.SHADOW_METRICS, deploy.SHADOW_RECOMMENDATION),
        shadow_doc_id,
    ),
    Projection(
        mongo.CANARY_WINDOWS, reduce_canary_window, (deploy.CANARY_METRICS, deploy.SHADOW_METRICS), history_doc_id
    ),
    Projection(mongo.DEPLOY_HISTORY, reduce_deploy_history, (deploy.DEPLOY_STEP,), history_doc_id),
)
