"""Request/reply over Kafka (``predict.requests`` → ``predict.replies``). FastStream's
``broker.request`` does not work on real Kafka, so requests carry a reply topic and a
correlation id in their headers and the caller matches replies by correlation id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Payload

B = TypeVar("B", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class RpcKind(Generic[B, R]):
    """One kind of request over request/reply: its name and the models of its body and of its result. The
    caller sends a ``body`` and gets a ``result``; the serving worker's handler takes the validated body (a
    body that does not validate is answered 422) and returns the result."""

    name: str
    body: type[B]
    result: type[R]


class NoBody(BaseModel):
    """The body of a kind that takes none (anything sent is ignored)."""

    model_config = ConfigDict(extra="ignore")


class Pong(BaseModel):
    pong: bool
    worker_id: str


PING = RpcKind("ping", NoBody, Pong)

RPC_REQUESTED = "modelbus.predict.requested"
RPC_REPLIED = "modelbus.predict.replied"


class RpcRequest(Payload):
    kind: str = Field(description="which handler: tabular.predict, lotto.generate, lotto.ensemble, rl.act")
    body: dict[str, Any] = Field(description="the kind's body model, as JSON (``RpcKind.body``)")


class RpcError(Payload):
    code: str
    message: str
    status: int = 500
    field: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class RpcReply(Payload):
    ok: bool
    result: dict[str, Any] | None = Field(None, description="the kind's result model, as JSON (``RpcKind.result``)")
    error: RpcError | None = None
    worker_id: str | None = None
    handled_ms: float | None = None
