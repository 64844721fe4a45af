"""Compare-and-set for model status changes: the change of a model to ``status_version`` N is
claimed once, by a unique insert; a second writer of the same version loses (the API answers 409)."""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from infra import mongo
from schemas.common import utcnow


async def claim_status(db: Any, model_id: str, version: int, status: str, by: str) -> bool:
    """Claims the change of ``model_id`` to ``status_version`` ``version``; False if someone else has it."""
    try:
        await db[mongo.STATUS_CLAIMS].insert_one(
            {
                "_id": f"{model_id}@{version}",
                "model_id": model_id,
                "status_version": version,
                "status": status,
                "by": by,
                "at": utcnow(),
            }
        )
    except DuplicateKeyError:
        return False
    return True


async def release_status(db: Any, model_id: str, version: int) -> None:
    """Gives a claim back (the change it guarded was not accepted, e.g. Kafka refused the command)."""
    await db[mongo.STATUS_CLAIMS].delete_one({"_id": f"{model_id}@{version}"})
