"""Serving worker: answers ``predict.requests`` on the reply topic named in each request.
Domain handlers (tabular predictions, lotto generation, RL actions) register by ``kind``.

The request topic is read by a librdkafka consumer in a thread of its own (``RequestReader``,
``infra.threaded_consumer``), not a FastStream subscriber:
on this path FastStream's per-message pipeline (logging, telemetry and Prometheus middlewares, dependency
injection, a task group per message) cost as much CPU as the handler itself (issue 16, py-spy). What it did
that matters is done here directly: the ``traceparent`` of the request is the parent of the handling span,
a record that is not a request envelope goes to the dead-letter topic, offsets are committed as FastStream's
default (before handling, like ``AckPolicy.ACK_FIRST``), requests are served side by side
(``MODELBUS_SERVING_CONCURRENCY``), the consumer fetches only every idle wait while idle and
follows the topic's generations on the embedded broker (``infra.topic_generations``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from consumers.deps import Deps
from consumers.dlq import dead_letter
from infra.kafka import idle_wait_ms
from infra.threaded_consumer import KafkaRecord, ThreadedConsumer, committed_to_end, consumer_config
from infra.topic_generations import wait_drained
from producers.publisher import log_failures
from schemas.envelope import Envelope
from schemas.errors import ApiError, validation_error
from schemas.rpc import PING, RPC_REPLIED, B, NoBody, Pong, R, RpcError, RpcKind, RpcReply, RpcRequest

log = logging.getLogger("modelbus.serving")


@dataclass
class Alongside:
    """A handler's result plus work that runs once the reply is sent, e.g. handing the served-prediction events to
    the producer (their acknowledgements are watched, not waited for: ``producers.publisher.log_failures``), then
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

    def reader(self) -> RequestReader:
        """The reader of ``predict.requests`` (started and stopped by the process's consumers)."""
        settings = self.deps.settings
        return RequestReader(self, settings.topic("predict.requests"), settings.group("serving"))

    async def consume(self, record: KafkaRecord) -> None:
        """One request record: its reply on the request's reply topic, then the handler's work alongside."""
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
        reply_to = headers.get("x-reply-topic")
        env = Envelope.from_bytes(record.value or b"")
        reply, alongside = await self.serve(env)
        try:
            if reply_to:
                out = Envelope.wrap(
                    RPC_REPLIED, env.subject, reply, source=f"modelbus/worker/{self.deps.worker_id}", cause=env
                )
                # first: building a batch's served events would hold the reply back; a reply that is not
                # acknowledged is logged (its caller times out)
                ack = self.deps.publisher.send_direct(
                    reply_to,
                    out.to_bytes(),
                    key=env.subject,
                    headers={
                        "content-type": "application/cloudevents+json",
                        "ce_type": out.type,
                        "x-correlation-id": headers.get("x-correlation-id", ""),
                    },
                )
                log_failures([ack], "sending a reply")
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


_tracer = trace.get_tracer("modelbus.serving")


class RequestReader:
    """One consumer of a request topic in the ``serving`` group (librdkafka, ``infra.threaded_consumer``): each
    record is served in a task of its own, at most ``serving_concurrency`` at once; offsets are committed as
    records are taken (before they are served). The catalog topic is read from its end; a generation of it
    (``follow``, called by ``infra.topic_generations``) from its start, and ``drained``/``stop(drain_s)`` tell
    when every record of it was taken. Idle, the consumer pauses and a watcher fetches with the long idle wait."""

    def __init__(self, service: ServingService, topic: str, group_id: str, *, from_start: bool = False) -> None:
        self.service = service
        self.settings = service.deps.settings
        self.topic_names = (topic,)
        self.group_id = group_id
        self.from_start = from_start
        self.consumer: ThreadedConsumer | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.settings.serving_concurrency)
        self._backlog = 4 * self.settings.serving_concurrency
        """records taken but not yet being served, beyond which the reader takes no more for now"""

    def follow(self, topic: str, group_id: str) -> RequestReader:
        """A reader of a generation of this topic (``infra.topic_generations``)."""
        return RequestReader(self.service, topic, group_id, from_start=True)

    async def start(self) -> None:
        busy = self.settings.rpc_fetch_max_wait_ms
        config = consumer_config(
            self.settings.kafka_bootstrap or "",
            self.group_id,
            busy,
            # a generation is deleted once drained: its reader commits itself, after each batch (an auto-commit
            # after the topic is gone would fail); the catalog topic's reader auto-commits what it took
            **{"enable.auto.commit": not self.from_start, "max.partition.fetch.bytes": 4 * 1024 * 1024},
        )
        self.consumer = ThreadedConsumer(
            config,
            self._take,
            f"serving-{self.topic_names[0]}",
            idle_after_s=self.settings.idle_after_seconds if self.settings.idle_fetch_max_wait_ms else 0.0,
            idle_wait_ms=idle_wait_ms(busy, self.settings),
            hold=lambda: len(self._inflight) >= self._backlog,
            commit_each_batch=self.from_start,
        )
        self.consumer.start()
        self.consumer.subscribe(self.topic_names[0], from_start=self.from_start)

    def assigned(self) -> bool:
        return bool(self.consumer is not None and self.consumer.assignment)

    def _take(self, records: list[KafkaRecord]) -> None:
        for record in records:
            task = asyncio.create_task(self._one(record))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _one(self, record: KafkaRecord) -> None:
        async with self._slots:
            await self.consume(record)

    async def consume(self, record: KafkaRecord) -> None:
        """Serves one record under a span whose parent is the request's ``traceparent``; a record that cannot
        be served (not a request envelope) is dead-lettered."""
        carrier = {k: v.decode(errors="replace") for k, v in record.headers if k == "traceparent"}
        parent = propagate.extract(carrier) if carrier else None
        with _tracer.start_as_current_span(f"{record.topic} process", context=parent, kind=SpanKind.CONSUMER):
            try:
                await self.service.consume(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bad record must not stop the reader
                try:
                    await dead_letter(self.service.deps.publisher, record, exc, group=self.group_id)
                except Exception:  # noqa: BLE001 - Kafka is gone: the caller times out, the reader goes on
                    log.exception("a request could neither be served nor dead-lettered")

    async def drained(self) -> bool:
        """Every record of the topic taken and served, and the group's offsets committed to its end."""
        if self.consumer is None or self._inflight:
            return False
        topic = self.topic_names[0]
        return bool(await self.consumer.call(lambda consumer: committed_to_end(consumer, topic)))

    async def stop(self, drain_s: float = 0.0) -> None:
        """Stops taking requests (after up to ``drain_s`` for the topic to be drained), leaves the group
        (committing what was taken), then lets the requests being served finish."""
        if drain_s and self.consumer is not None:
            await wait_drained(self.drained, drain_s)
        if self.consumer is not None:
            await self.consumer.close()
            self.consumer = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
