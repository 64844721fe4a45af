"""Authentication for the API: ``X-API-Key`` header or ``api_key`` query parameter, checked
against the stored key hashes. (Issue 5 extends this with JWT, scopes and tiers.)"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.errors import ApiError
from infra.keys import find_key, hash_key


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    tier: str
    scopes: tuple[str, ...]


@dataclass
class KeyCache:
    """Short-lived cache of key lookups so a request does not always cost a database read."""

    ttl_s: float = 5.0
    entries: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        hit = self.entries.get(digest)
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return True, hit[1]
        return False, None

    def put(self, digest: str, principal: Principal | None) -> None:
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[digest] = (time.monotonic(), principal)


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """``X-API-Key`` header, ``api_key`` query parameter, or an API key sent as a Bearer token."""
    key = connection.headers.get("x-api-key") or connection.query_params.get("api_key")
    if key:
        return key
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    key = presented_key(connection)
    if not key:
        raise ApiError(
            401, "UNAUTHORIZED", "credentials are required (X-API-Key header, api_key query parameter or Bearer token)"
        )
    cache: KeyCache = connection.app.state.key_cache
    digest = hash_key(key)
    found, principal = cache.get(digest)
    if not found:
        doc = await find_key(connection.app.state.db, key)
        principal = None if doc is None else Principal(doc["_id"], doc["name"], doc["tier"], tuple(doc["scopes"]))
        cache.put(digest, principal)
    if principal is None:
        raise ApiError(401, "UNAUTHORIZED", "the API key is not valid")
    connection.scope.setdefault("state", {})["principal"] = principal  # type: ignore[typeddict-item]
    return principal


async def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    await authenticate(connection)


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    return connection.scope.get("state", {}).get("principal")
