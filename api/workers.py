"""Calling the serving workers over Kafka request/reply from a route handler."""

from __future__ import annotations

from typing import Any

from producers.rpc import RpcClient, RpcTimeout
from schemas.errors import ApiError
from schemas.rpc import B, R, RpcKind


async def worker_result(rpc: RpcClient, kind: RpcKind[B, R], body: B, *, key: str) -> dict[str, Any]:
    """The worker's result as it sent it (the JSON form of ``kind.result``; validate it with that model or one
    that extends it), or the worker's error as an ApiError; 503 when no worker answers."""
    try:
        reply = await rpc.call(kind.name, body.model_dump(mode="json"), key=key)
    except RpcTimeout as exc:
        raise ApiError(503, "WORKER_UNAVAILABLE", str(exc), headers={"Retry-After": "5"}) from exc
    if reply.ok:
        return reply.result or {}
    assert reply.error is not None
    raise ApiError.from_rpc(reply.error)


async def call_worker(rpc: RpcClient, kind: RpcKind[B, R], body: B, *, key: str) -> R:
    """The worker's result, validated (see ``worker_result``)."""
    return kind.result.model_validate(await worker_result(rpc, kind, body, key=key))
