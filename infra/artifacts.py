"""The artifact store: model artifacts and their companions (hold-out predictions) in GridFS, each model's
artifact checked against the sha256 the registry holds whenever it is read."""

from __future__ import annotations

import hashlib
from typing import Any

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from pymongo.asynchronous.database import AsyncDatabase

from infra import mongo
from schemas.errors import ApiError


def _bucket(db: AsyncDatabase) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(db, bucket_name=mongo.ARTIFACT_BUCKET)


async def store(db: AsyncDatabase, filename: str, data: bytes, metadata: dict[str, Any]) -> ObjectId:
    return await _bucket(db).upload_from_stream(filename, data, metadata=metadata)


async def read(db: AsyncDatabase, file_id: Any) -> bytes:
    stream = await _bucket(db).open_download_stream(ObjectId(file_id))
    return await stream.read()


async def model_artifact(db: AsyncDatabase, model: dict[str, Any]) -> bytes:
    """The artifact of a registry document (``artifact_id``), refused (500 ``ARTIFACT_CORRUPT``) unless its
    sha256 is the registered ``artifact_sha256``."""
    data = await read(db, model["artifact_id"])
    if hashlib.sha256(data).hexdigest() != model["artifact_sha256"]:
        raise ApiError(500, "ARTIFACT_CORRUPT", f"artifact of {model['model_id']} does not match its sha256")
    return data


async def delete(db: AsyncDatabase, file_id: Any) -> None:
    await _bucket(db).delete(file_id)
