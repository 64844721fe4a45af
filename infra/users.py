"""Users (for ``POST /auth/login``): argon2 password hashes, a tier and scopes."""

from __future__ import annotations

import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from pymongo.asynchronous.database import AsyncDatabase

from infra import mongo
from infra.keys import ALL_SCOPES
from schemas.common import utcnow

_HASHER = PasswordHasher()
DEMO_USER = ("user@example.com", "secure_password")
"""The seed document's login example; created only by ``modelbus up --demo``."""


async def create_user(
    db: AsyncDatabase,
    username: str,
    password: str,
    *,
    tier: str = "free",
    scopes: tuple[str, ...] = ("read", "predict"),
) -> dict[str, Any]:
    """Creates or replaces the user (the password is stored only as an argon2 hash)."""
    doc = {
        "_id": username,
        "password_hash": _HASHER.hash(password),
        "tier": tier,
        "scopes": list(scopes),
        "created_at": utcnow(),
        "disabled": False,
    }
    await db[mongo.USERS].replace_one({"_id": username}, doc, upsert=True)
    return {k: v for k, v in doc.items() if k != "password_hash"}


async def verify_user(db: AsyncDatabase, username: str, password: str) -> dict[str, Any] | None:
    doc = await db[mongo.USERS].find_one({"_id": username, "disabled": False})
    if doc is None:
        _HASHER.hash(password)  # same work whether or not the user exists
        return None
    try:
        _HASHER.verify(doc["password_hash"], password)
    except (VerifyMismatchError, InvalidHashError):
        return None
    return doc


async def jwt_secret(db: AsyncDatabase, configured: str | None) -> str:
    """The signing secret shared by every API process: configured, or generated once and kept in MongoDB."""
    if configured:
        return configured
    candidate = secrets.token_urlsafe(48)
    await db[mongo.SECRETS].update_one({"_id": "jwt"}, {"$setOnInsert": {"value": candidate}}, upsert=True)
    doc = await db[mongo.SECRETS].find_one({"_id": "jwt"})
    assert doc is not None
    return str(doc["value"])


__all__ = ["ALL_SCOPES", "DEMO_USER", "create_user", "jwt_secret", "verify_user"]
