"""Authentication, authorisation and rate limiting for every protected route of every family.

Credentials, in this order: ``X-API-Key`` header, ``api_key`` query parameter, ``Authorization:
Bearer <token>`` where the token is a JWT access token from ``/auth/login`` (or, for the RL
family's clients, an API key), or the web console's session cookie (``api/console/session.py``; any
method but GET/HEAD/OPTIONS then needs its ``X-CSRF-Token``). Refresh tokens, expired and tampered
tokens are refused (401).
The scope a route needs follows from its method and path (``required_scope``): no or bad
credentials → 401, valid credentials without the scope → 403. Then the caller's tier limits
apply (``api/ratelimit.py``); the headers are added to the response by ``api.middleware.HttpEdge``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Scope

from infra.keys import find_key, hash_key
from schemas.errors import ApiError

log = logging.getLogger("modelbus.security")


@dataclass(frozen=True)
class Principal:
    key_id: str
    """the API key id, or ``user:<username>`` for a JWT"""
    name: str
    tier: str
    scopes: tuple[str, ...]


@dataclass
class KeyCache:
    """Lookups of API keys (and of the key or user behind a console session), cached so a request does not
    cost a database read. Within ``ttl_s`` the cached answer is used; past it, a known principal is still used
    while one lookup refreshes it in the background, for at most ``stale_s`` more (a revoked key is refused once
    that lookup lands: within ``ttl_s`` and one lookup of its revocation, as before); an unknown key or an
    older entry waits for the lookup. One lookup per key at a time: requests that miss together share it. Before, every
    request that arrived during a lookup made its own: in session 13's soak (50 req/s, one training job a minute,
    the database growing) the client's p99 grew to ~1.7 s while the Kafka round trip's stayed under 0.3 s, and
    with this cache the two stayed within a few ms of each other (the lookups' own times were not measured)."""

    ttl_s: float = 5.0
    stale_s: float = 5.0
    entries: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)
    _loading: dict[str, asyncio.Future[Principal | None]] = field(default_factory=dict)
    _epoch: int = 0

    async def lookup(self, key: str, load: Callable[[], Awaitable[Principal | None]]) -> Principal | None:
        """The principal of ``key`` (None: unknown or revoked), from the cache or from ``load()``."""
        hit = self.entries.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < self.ttl_s:
                return hit[1]
            if hit[1] is not None and age < self.ttl_s + self.stale_s:
                self._load(key, load)  # refreshed in the background; this request goes on
                return hit[1]
        return await asyncio.shield(self._load(key, load))

    def clear(self) -> None:
        """Forgets every entry (a key was revoked); a lookup already running does not store its answer."""
        self.entries.clear()
        self._loading.clear()
        self._epoch += 1

    def _load(self, key: str, load: Callable[[], Awaitable[Principal | None]]) -> asyncio.Future[Principal | None]:
        running = self._loading.get(key)
        if running is None:
            running = self._loading[key] = asyncio.ensure_future(self._store(key, load, self._epoch))
            running.add_done_callback(_retrieved)
        return running

    async def _store(self, key: str, load: Callable[[], Awaitable[Principal | None]], epoch: int) -> Principal | None:
        try:
            principal = await load()
        finally:
            if epoch == self._epoch:
                self._loading.pop(key, None)
        if epoch == self._epoch:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[key] = (time.monotonic(), principal)
        return principal


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A background refresh's error is logged here (a request waiting on the lookup gets it too)."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.warning("looking up a key failed: %s: %s", exc.__class__.__name__, exc)


ANONYMOUS = Principal("anonymous", "anonymous (MODELBUS_AUTH_ENABLED=false)", "enterprise", ("admin",))


def required_scope(method: str, path: str) -> str:
    """The scope a route needs: admin for key/user management, read for reads, deploy for
    deployments, train for training and data import, predict for everything that serves a model."""
    if path.startswith(("/auth/keys", "/auth/users")):
        return "admin"
    if method in ("GET", "HEAD", "OPTIONS") or path == "/v1/ml/models/compare":
        return "read"
    if path.startswith("/v1/ml/deploy") or path.endswith("/deploy"):
        return "deploy"
    if "/train" in path or path.startswith(("/api/v1/training", "/v1/ml/data", "/api/draws")):
        return "train"
    return "predict"


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """An API key from the header, the query, or a Bearer token that is not a JWT."""
    key = connection.headers.get("x-api-key") or connection.query_params.get("api_key")
    if key:
        return key
    token = _bearer(connection)
    return token if token and token.count(".") != 2 else None


def issue_tokens(
    secret: str, username: str, tier: str, scopes: list[str], *, access_s: int, refresh_s: int
) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": username, "tier": tier, "scopes": scopes, "iat": now}
    access = jwt.encode(base | {"type": "access", "exp": now + access_s}, secret, algorithm="HS256")
    refresh = jwt.encode(base | {"type": "refresh", "exp": now + refresh_s}, secret, algorithm="HS256")
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": access_s}


def decode_token(secret: str, token: str, expected_type: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "type"]})
    except jwt.ExpiredSignatureError as exc:
        raise ApiError(401, "TOKEN_EXPIRED", "the token has expired; refresh it or log in again") from exc
    except jwt.InvalidTokenError as exc:
        raise ApiError(401, "INVALID_TOKEN", "the token is not valid") from exc
    if claims.get("type") != expected_type:
        raise ApiError(
            401, "INVALID_TOKEN", f"a {claims.get('type')} token cannot be used here; send the {expected_type} token"
        )
    return claims


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    state = connection.app.state
    key = presented_key(connection)
    if key:
        cache: KeyCache = state.key_cache

        async def load() -> Principal | None:
            doc = await find_key(state.db, key)
            return None if doc is None else Principal(doc["_id"], doc["name"], doc["tier"], tuple(doc["scopes"]))

        principal = await cache.lookup(hash_key(key), load)
        if principal is None:
            raise ApiError(401, "UNAUTHORIZED", "the API key is not valid")
        return principal
    token = _bearer(connection)
    if token:
        claims = decode_token(state.jwt_secret, token, "access")
        return Principal(
            f"user:{claims['sub']}", claims["sub"], claims.get("tier", "free"), tuple(claims.get("scopes", ()))
        )
    if "mb_console" in connection.cookies:  # the web console's own fetches (CSRF header checked there)
        from api.console.session import api_principal

        return await api_principal(connection)
    raise ApiError(
        401, "UNAUTHORIZED", "credentials are required (X-API-Key header, api_key query parameter or Bearer token)"
    )


async def api_key_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The guard of every protected route: authenticate, check the route's scope, apply limits."""
    settings = connection.app.state.settings
    if not settings.auth_enabled:  # benchmarks only
        connection.scope.setdefault("state", {})["principal"] = ANONYMOUS  # type: ignore[typeddict-item]
        return
    principal = await authenticate(connection)
    scope_state: dict[str, Any] = connection.scope.setdefault("state", {})  # type: ignore[assignment]
    scope_state["principal"] = principal
    needed = required_scope(connection.scope.get("method", "GET"), connection.scope["path"])
    if needed not in principal.scopes and "admin" not in principal.scopes:
        raise ApiError(
            403,
            "FORBIDDEN",
            f"this route needs the '{needed}' scope; the credentials have {', '.join(principal.scopes) or 'none'}",
            required_scope=needed,
        )
    if not settings.rate_limits_enabled:
        return
    decision = await connection.app.state.limiter.acquire(principal.key_id, principal.tier)
    scope_state["rate_limit"] = decision
    if not decision.allowed:
        raise ApiError(
            429,
            "RATE_LIMIT_EXCEEDED",
            f"rate limit of {decision.reason} for the {principal.tier} tier exceeded; "
            f"retry in {decision.retry_after} s",
            headers=decision.headers(),
            retry_after_seconds=decision.retry_after,
        )


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    return connection.scope.get("state", {}).get("principal")


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def add_response_headers(scope: Scope, headers: MutableScopeHeaders) -> None:
    """The standard security headers and the caller's rate-limit headers, on every response
    (``api.middleware.HttpEdge``)."""
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    decision = scope.get("state", {}).get("rate_limit")  # type: ignore[union-attr]
    if decision is not None and decision.allowed:
        for name, value in decision.headers().items():
            headers[name] = value


def release_slot(scope: Scope) -> None:
    """Frees the caller's concurrency slot once the response is sent (``api.middleware.HttpEdge``, without holding
    the connection: uvicorn starts the next request of a keep-alive connection only when the call returns)."""
    decision = scope.get("state", {}).get("rate_limit")  # type: ignore[union-attr]
    if decision is not None and decision.slot:
        scope["app"].state.limiter.release(decision)  # type: ignore[index]
