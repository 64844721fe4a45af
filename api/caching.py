"""HTTP caching for GET responses.

* A strong ``ETag`` on every successful JSON GET; ``If-None-Match`` with it answers ``304``.
* ``Cache-Control`` per route (statistics 5 min, registries 30 s, jobs/tasks ``no-cache``: revalidate).
* A server-side response cache for routes marked ``cache=`` (the expensive statistics), through
  Litestar's response cache, which runs *after* authentication and rate limiting. Its key is the
  caller (API key id or user) + path + query; a request with ``Cache-Control: no-cache`` gets a fresh
  result (it is keyed uniquely, so it never reads a stored one)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from litestar import Request
from litestar.config.response_cache import ResponseCacheConfig
from litestar.types import Message, Scope, Send

POLICIES: tuple[tuple[str, str], ...] = (
    ("/api/statistics", "private, max-age=300"),
    ("/v1/ml/models", "private, max-age=30"),
    ("/api/v1/models", "private, max-age=30"),
    ("/api/draws", "private, max-age=60"),
)
DEFAULT_POLICY = "private, no-cache"
SKIP = ("/metrics", "/docs", "/redoc", "/openapi.json", "/asyncapi", "/schema", "/ui/stream")
"""not buffered for an ETag: static docs, and the console's server-sent-event streams (never complete)"""


def cache_control(path: str) -> str:
    return next((control for prefix, control in POLICIES if path.startswith(prefix)), DEFAULT_POLICY)


def cache_key(request: Request[Any, Any, Any]) -> str:
    """Caller + path + query; a ``no-cache`` request gets a key of its own (always computed afresh)."""
    principal = request.scope.get("state", {}).get("principal")
    caller = principal.key_id if principal is not None else "anonymous"
    if "no-cache" in request.headers.get("cache-control", "").lower():
        return f"fresh:{uuid.uuid4().hex}"
    return f"{caller}:{request.url.path}?{request.url.query}"


RESPONSE_CACHE = ResponseCacheConfig(key_builder=cache_key, default_expiration=300)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def request_header(scope: Scope, name: bytes) -> str:
    """A request header's value from the ASGI scope (``name`` in lower case), or \"\"."""
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), "")


def etag_send(scope: Scope, send: Send) -> Send:
    """For a successful GET (outside ``SKIP``): ``send`` wrapped to buffer the body, add ``ETag`` and
    ``Cache-Control``, and answer ``304`` when the caller already has that version; for any other request ``send``
    itself (``api.middleware.HttpEdge`` calls it for every request)."""
    path = scope["path"]
    if scope.get("method") != "GET" or path.startswith(SKIP):
        return send
    if_none_match = request_header(scope, b"if-none-match")
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def buffered(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        status = int(start.get("status", 200))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"etag", b"content-length")]
        if status == 200:
            tag = etag_of(body)
            if not any(k.lower() == b"cache-control" for k, _ in headers):
                headers.append((b"cache-control", cache_control(path).encode()))
            headers.append((b"etag", tag.encode()))
            if tag in [t.strip() for t in if_none_match.split(",") if t.strip()]:
                kept = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return buffered
