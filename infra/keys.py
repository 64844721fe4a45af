"""API keys: stored only as SHA-256 hashes (keys are 256-bit random, so a fast hash is safe),
each with a tier and scopes."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from infra import mongo
from schemas.common import new_id, utcnow

ALL_SCOPES = ("read", "predict", "train", "deploy", "admin")
KEY_PREFIX = "mb_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def store_key(
    db: AsyncDatabase, key: str, *, name: str, tier: str = "enterprise", scopes: tuple[str, ...] = ALL_SCOPES
) -> dict[str, Any]:
    """Stores the hash of ``key`` (idempotent for the same key). Returns the stored document."""
    digest = hash_key(key)
    existing = await db[mongo.API_KEYS].find_one({"hash": digest})
    if existing:
        return existing
    doc = {
        "_id": new_id("key"),
        "hash": digest,
        "name": name,
        "tier": tier,
        "scopes": list(scopes),
        "created_at": utcnow(),
        "revoked": False,
        "prefix": key[:7],
    }
    await db[mongo.API_KEYS].insert_one(doc)
    return doc


async def find_key(db: AsyncDatabase, key: str) -> dict[str, Any] | None:
    doc = await db[mongo.API_KEYS].find_one({"hash": hash_key(key), "revoked": False})
    return doc
