"""Calling the serving workers over Kafka request/reply from a route handler."""

from __future__ import annotations

from typing import Any

from producers.rpc import RpcClient, RpcTimeout
from schemas.errors import ApiError


async def call_worker(rpc: RpcClient, kind: str, body: dict[str, Any], *, key: str) -> dict[str, Any]:
    """The worker's result, or the worker's error as an ApiError; 503 when no worker answers."""
    try:
        reply = await rpc.call(kind, body, key=key)
    except RpcTimeout as exc:
        raise ApiError(503, "WORKER_UNAVAILABLE", str(exc), headers={"Retry-After": "5"}) from exc
    if reply.ok:
        return reply.result or {}
    assert reply.error is not None
    raise ApiError.from_rpc(reply.error)
