"""Request/reply over Kafka (``predict.requests`` → ``predict.replies``). FastStream's
``broker.request`` does not work on real Kafka, so requests carry a reply topic and a
correlation id in their headers and the caller matches replies by correlation id."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.envelope import Payload

RPC_REQUESTED = "modelbus.predict.requested"
RPC_REPLIED = "modelbus.predict.replied"


class RpcRequest(Payload):
    kind: str = Field(description="which handler: tabular.predict, lotto.generate, lotto.ensemble, rl.act")
    body: dict[str, Any]


class RpcError(Payload):
    code: str
    message: str
    status: int = 500
    field: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class RpcReply(Payload):
    ok: bool
    result: dict[str, Any] | None = None
    error: RpcError | None = None
    worker_id: str | None = None
    handled_ms: float | None = None
