"""The API side of the model registry, the same for every domain: finding a model and the fields every model
view starts from (each family's view renames them to its seed's names)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from infra import mongo
from schemas.common import iso
from schemas.errors import ApiError


def iso_or_none(value: Any) -> str | None:
    return iso(value) if value is not None else None


async def find_model(db: AsyncDatabase, model_id: str, domain: str, *, what: str = "model") -> dict[str, Any]:
    """The registry document of ``domain``, or 404 ``MODEL_NOT_FOUND``."""
    doc = await db[mongo.MODELS].find_one({"_id": model_id, "domain": domain})
    if doc is None:
        raise ApiError(404, "MODEL_NOT_FOUND", f"no {what} {model_id!r}", field="model_id")
    return doc


def model_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """Identity, status, metrics and times of a registered model (times as ISO strings)."""
    return {
        "model_id": doc["model_id"],
        "model_name": doc["model_name"],
        "model_type": doc["model_type"],
        "version": doc["version"],
        "status": doc["status"],
        "metrics": doc["metrics"],
        "trained_at": iso_or_none(doc.get("trained_at")),
        "deployed_at": iso_or_none(doc.get("deployed_at")),
    }
