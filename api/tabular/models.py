"""``/v1/ml/models``: the registry of fraud/anomaly models, lineage and comparison (seed 000).

Comparison (``ml/tabular/compare.py``): the candidate is the model with the highest hold-out ``f1_score``;
it is the ``winner`` only when its f1 difference against every other model is conclusive (a bootstrap
interval over hold-out records excluding 0, paired when the models share their hold-out). This module
loads the models and their stored hold-out predictions; the statistics are pure."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from litestar import Controller, get, post
from litestar.params import Parameter
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.registry import find_model, model_fields
from api.security import api_key_guard
from infra import artifacts, mongo
from ml.tabular.compare import Entry, NotComparable, compare_models
from ml.tabular.holdout import HoldoutPredictions
from schemas.errors import ApiError
from schemas.tabular import ModelComparison, ModelDetail, ModelList, ModelSummary

ModelStatus = Literal["trained", "staging", "canary", "production", "archived", "rolled_back"]


class CompareRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model_ids": ["model_v1.2.0", "model_v1.3.0"]}]}
    )  # the seed's example

    model_ids: list[str] = Field(
        min_length=2,
        max_length=20,
        description="2 to 20 model ids; repeats are dropped, and at least two different ids must remain (a rule the "
        "schema does not state: 422 VALIDATION_ERROR)",
    )


def model_summary(doc: dict[str, Any]) -> ModelSummary:
    return ModelSummary(**model_fields(doc))


async def compare_entry(db: AsyncDatabase, doc: dict[str, Any]) -> Entry:
    """A model document and, when it has a labelled hold-out, its stored per-record predictions."""
    holdout_sha = ((doc.get("lineage") or {}).get("holdout") or {}).get("records_sha256")
    predictions = None
    if doc.get("holdout_predictions_id") and doc["metrics"].get("f1_score") is not None:
        predictions = HoldoutPredictions.from_bytes(await artifacts.read(db, doc["holdout_predictions_id"]))
        if predictions.fingerprint != holdout_sha:
            raise RuntimeError(f"{doc['model_id']}: stored hold-out predictions do not match its hold-out")
    return Entry(doc["model_id"], doc["metrics"], doc["trained_at"], holdout_sha, predictions)


class ModelsController(Controller):
    path = "/v1/ml/models"
    guards = [api_key_guard]
    tags = ["ml: registry"]

    @get("/", summary="Models in the registry", responses=error_responses(422))
    async def list_models(
        self,
        db: AsyncDatabase,
        status: ModelStatus | None = None,
        model_type: Literal["lightgbm", "isolation_forest"] | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> ModelList:
        query: dict[str, Any] = {"domain": "tabular"}
        if status:
            query["status"] = status
        if model_type:
            query["model_type"] = model_type
        docs = db[mongo.MODELS].find(query).sort("trained_at", -1).limit(limit)
        return ModelList(models=[model_summary(d) async for d in docs])

    @get("/{model_id:str}", summary="One model with its lineage", responses=error_responses(404, 422))
    async def get_model(self, model_id: str, db: AsyncDatabase) -> ModelDetail:
        doc = await find_model(db, model_id, "tabular")
        return ModelDetail(
            **model_fields(doc),
            lineage=doc["lineage"],
            artifact_sha256=doc["artifact_sha256"],
            artifact_bytes=doc["artifact_bytes"],
            history=doc.get("history", []),
        )

    @post(
        "/compare",
        status_code=200,
        summary="Compare two or more models on their hold-out metrics",
        description="Repeated ids are compared once; fewer than two different ids is 422 VALIDATION_ERROR (a rule "
        "across the list's items, not in the schema). Unknown ids: 404 MODEL_NOT_FOUND.",
        responses=error_responses(400, 404, 422),
    )
    async def compare_models(self, data: CompareRequest, db: AsyncDatabase) -> ModelComparison:
        ids = list(dict.fromkeys(data.model_ids))
        if len(ids) < 2:
            raise ApiError(422, "VALIDATION_ERROR", "give at least two different model ids", field="model_ids")
        found = {d["_id"]: d async for d in db[mongo.MODELS].find({"_id": {"$in": ids}, "domain": "tabular"})}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ApiError(
                404, "MODEL_NOT_FOUND", f"unknown model id(s): {', '.join(missing)}", field="model_ids", missing=missing
            )
        entries = [await compare_entry(db, found[i]) for i in ids]
        try:
            result = await asyncio.to_thread(compare_models, entries)  # the bootstrap takes ~0.1-1 s of CPU
        except NotComparable as exc:
            raise ApiError(422, "NOT_COMPARABLE", str(exc), field="model_ids") from exc
        return ModelComparison.model_validate(result)
