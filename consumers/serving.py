"""Serving worker: answers ``predict.requests`` on the reply topic named in each request.
Domain handlers (tabular predictions, lotto generation, RL actions) register by ``kind``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ValidationError

from consumers.deps import Deps
from schemas.envelope import Envelope
from schemas.errors import ApiError, validation_error
from schemas.rpc import PING, RPC_REPLIED, B, NoBody, Pong, R, RpcError, RpcKind, RpcReply, RpcRequest

log = logging.getLogger("modelbus.serving")


@dataclass
class Alongside:
    """A handler's result plus work that runs once the reply is sent, e.g. storing the served predictions, then
    ``after`` (e.g. a shadow model's scoring). All of it is awaited before the next request takes this slot."""

    result: BaseModel
    work: Awaitable[Any]
    after: Awaitable[Any] | None = None


Handler = Callable[[Any, Envelope], Awaitable[Any]]
"""(the kind's validated body, the request envelope) -> the kind's result, or an ``Alongside`` carrying it"""


class ServingService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.handlers: dict[str, tuple[RpcKind[Any, Any], Handler]] = {}
        self.add(PING, self._ping)

    async def _ping(self, body: NoBody, env: Envelope) -> Pong:
        return Pong(pong=True, worker_id=self.deps.worker_id)

    def add(self, kind: RpcKind[B, R], handler: Callable[[B, Envelope], Awaitable[R | Alongside]]) -> None:
        self.handlers[kind.name] = (kind, handler)

    def register(self, broker: KafkaBroker) -> None:
        settings = self.deps.settings

        @broker.subscriber(
            settings.topic("predict.requests"),
            group_id=settings.group("serving"),
            auto_offset_reset="latest",
            fetch_max_wait_ms=settings.rpc_fetch_max_wait_ms,
            decoder=self.deps.records_decoder,
            no_reply=True,  # we publish the reply ourselves (FastStream would also answer reply_to)
            max_workers=settings.serving_concurrency,  # requests are independent: serve several at once
            title="serving",
            description="Answers prediction / generation / action requests on the request's reply topic.",
        )
        async def on_request(records: Any) -> None:
            (record,) = records
            headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
            reply_to = headers.get("x-reply-topic")
            env = Envelope.from_bytes(record.value)
            reply, alongside = await self.serve(env)
            try:
                if reply_to:
                    out = Envelope.wrap(
                        RPC_REPLIED, env.subject, reply, source=f"modelbus/worker/{self.deps.worker_id}", cause=env
                    )
                    # first: building a batch's served events would hold the reply back
                    await self.deps.publisher.publish_direct(
                        reply_to,
                        out.to_bytes(),
                        key=env.subject,
                        headers={
                            "content-type": "application/cloudevents+json",
                            "ce_type": out.type,
                            "x-correlation-id": headers.get("x-correlation-id", ""),
                        },
                    )
            finally:  # the served predictions are recorded even when the reply could not be sent
                if alongside is not None:
                    await alongside.work
                    if alongside.after is not None:
                        await alongside.after

    async def serve(self, env: Envelope) -> tuple[RpcReply, Alongside | None]:
        """The reply, and the handler's work to finish alongside and after sending it (if any)."""
        t0 = time.perf_counter()
        request = env.payload(RpcRequest)
        entry = self.handlers.get(request.kind)
        alongside: Alongside | None = None
        try:
            if entry is None:
                raise ApiError(400, "UNKNOWN_REQUEST_KIND", f"no handler for {request.kind!r}")
            kind, handler = entry
            try:
                body = kind.body.model_validate(request.body)
            except ValidationError as exc:
                raise validation_error(exc) from exc
            result = await handler(body, env)
            if isinstance(result, Alongside):
                alongside, result = result, result.result
            reply = RpcReply(ok=True, result=result.model_dump(mode="json"))
        except ApiError as exc:
            reply = RpcReply(ok=False, error=exc.to_rpc())
        except Exception as exc:  # noqa: BLE001 - the caller gets an error reply, the worker goes on
            log.exception("serving failed", extra={"kind": request.kind, "subject": env.subject})
            reply = RpcReply(
                ok=False, error=RpcError(code="ML_MODEL_ERROR", message=f"{exc.__class__.__name__}: {exc}")
            )
        reply.worker_id = self.deps.worker_id
        reply.handled_ms = round((time.perf_counter() - t0) * 1000, 3)
        return reply, alongside
