"""``/v1/ml/models``: the registry of fraud/anomaly models, lineage and comparison (seed 000).

Comparison: the winner is the model with the highest hold-out ``f1_score`` (fraud is rare, so
accuracy alone rewards predicting "no fraud"); ties go to the higher ``roc_auc``, then to the
newer model. ``improvement`` is the winner's figure minus the best other model's figure."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, get, post
from litestar.params import Parameter
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import ApiError
from api.security import api_key_guard
from infra import mongo
from schemas.common import iso

COMPARED = ("accuracy", "precision", "recall", "f1_score", "roc_auc", "false_positive_rate")
IMPROVEMENT = ("accuracy", "precision", "recall", "f1_score", "roc_auc")
ModelStatus = Literal["trained", "staging", "canary", "production", "archived", "rolled_back"]


class CompareRequest(BaseModel):
    model_ids: list[str] = Field(min_length=2, max_length=20)


def _time(value: Any) -> str | None:
    return iso(value) if value is not None else None


def model_summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_id": doc["model_id"],
        "model_name": doc["model_name"],
        "model_type": doc["model_type"],
        "version": doc["version"],
        "status": doc["status"],
        "metrics": doc["metrics"],
        "trained_at": _time(doc.get("trained_at")),
        "deployed_at": _time(doc.get("deployed_at")),
    }


def compare(docs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [{"model_id": d["model_id"], **{m: d["metrics"].get(m) for m in COMPARED}} for d in docs]
    scored = [(d, r) for d, r in zip(docs, rows, strict=True) if r["f1_score"] is not None]
    if not scored:
        raise ApiError(
            422,
            "NOT_COMPARABLE",
            "none of these models has hold-out labels (f1_score); train on labelled records to compare them",
            field="model_ids",
        )

    def rank(item: tuple[dict[str, Any], dict[str, Any]]) -> tuple[float, float, Any]:
        doc, row = item
        return (row["f1_score"], row["roc_auc"] if row["roc_auc"] is not None else -1.0, doc["trained_at"])

    ordered = sorted(scored, key=rank, reverse=True)
    winner = ordered[0][1]
    improvement: dict[str, float] = {}
    if len(ordered) > 1:
        runner_up = ordered[1][1]
        for metric in IMPROVEMENT:
            if winner[metric] is not None and runner_up[metric] is not None:
                improvement[metric] = round(winner[metric] - runner_up[metric], 4)
    return {
        "comparison": rows,
        "winner": winner["model_id"],
        "improvement": improvement,
        "decided_by": "highest hold-out f1_score; ties: higher roc_auc, then the newer model; "
        "improvement = winner minus the best other model",
    }


class ModelsController(Controller):
    path = "/v1/ml/models"
    guards = [api_key_guard]
    tags = ["ml: registry"]

    @get("/", summary="Models in the registry")
    async def list_models(
        self,
        db: AsyncDatabase,
        status: ModelStatus | None = None,
        model_type: Literal["lightgbm", "isolation_forest"] | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"domain": "tabular"}
        if status:
            query["status"] = status
        if model_type:
            query["model_type"] = model_type
        docs = db[mongo.MODELS].find(query).sort("trained_at", -1).limit(limit)
        return {"models": [model_summary(d) async for d in docs]}

    @get("/{model_id:str}", summary="One model with its lineage")
    async def get_model(self, model_id: str, db: AsyncDatabase) -> dict[str, Any]:
        doc = await db[mongo.MODELS].find_one({"_id": model_id, "domain": "tabular"})
        if doc is None:
            raise ApiError(404, "MODEL_NOT_FOUND", f"no model {model_id!r}", field="model_id")
        return {
            **model_summary(doc),
            "lineage": doc["lineage"],
            "artifact_sha256": doc["artifact_sha256"],
            "artifact_bytes": doc["artifact_bytes"],
            "history": doc.get("history", []),
        }

    @post("/compare", status_code=200, summary="Compare two or more models on their hold-out metrics")
    async def compare_models(self, data: CompareRequest, db: AsyncDatabase) -> dict[str, Any]:
        ids = list(dict.fromkeys(data.model_ids))
        if len(ids) < 2:
            raise ApiError(422, "VALIDATION_ERROR", "give at least two different model ids", field="model_ids")
        found = {d["_id"]: d async for d in db[mongo.MODELS].find({"_id": {"$in": ids}, "domain": "tabular"})}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ApiError(
                404, "MODEL_NOT_FOUND", f"unknown model id(s): {', '.join(missing)}", field="model_ids", missing=missing
            )
        return compare([found[i] for i in ids])
