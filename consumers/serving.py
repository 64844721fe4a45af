"""Serving worker: answers ``predict.requests`` on the reply topic named in each request.
Domain handlers (tabular predictions, lotto generation, RL actions) register by ``kind``.

The request topic is read by a plain aiokafka consumer (``RequestReader``), not a FastStream subscriber:
on this path FastStream's per-message pipeline (logging, telemetry and Prometheus middlewares, dependency
injection, a task group per message) cost as much CPU as the handler itself (issue 16, py-spy). What it did
that matters is done here directly: the ``traceparent`` of the request is the parent of the handling span,
a record that is not a request envelope goes to the dead-letter topic, offsets are committed as FastStream's
default (before handling, like ``AckPolicy.ACK_FIRST``), requests are served side by side
(``MODELBUS_SERVING_CONCURRENCY``), the consumer slows its polling while idle (``infra.kafka.idle_waits``) and
follows the topic's generations on the embedded broker (``infra.topic_generations``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from consumers.deps import Deps
from consumers.dlq import dead_letter
from infra.kafka import idle_waits
from infra.topic_generations import committed_to_end, wait_drained
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

    def reader(self) -> RequestReader:
        """The reader of ``predict.requests`` (started and stopped by the process's consumers)."""
        settings = self.deps.settings
        return RequestReader(self, settings.topic("predict.requests"), settings.group("serving"))

    async def consume(self, record: ConsumerRecord) -> None:
        """One request record: its reply on the request's reply topic, then the handler's work alongside."""
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


_tracer = trace.get_tracer("modelbus.serving")


class RequestReader:
    """One consumer of a request topic in the ``serving`` group: each record is served in a task of its own, at
    most ``serving_concurrency`` at once; offsets are committed as records are taken (before they are served).
    The catalog topic is read from its end; a generation of it (``follow``, called by ``infra.topic_generations``)
    from its start, and ``drained``/``stop(drain_s)`` tell when every record of it was taken."""

    def __init__(self, service: ServingService, topic: str, group_id: str, *, from_start: bool = False) -> None:
        self.service = service
        self.settings = service.deps.settings
        self.topic_names = (topic,)
        self.group_id = group_id
        self.from_start = from_start
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.settings.serving_concurrency)

    def follow(self, topic: str, group_id: str) -> RequestReader:
        """A reader of a generation of this topic (``infra.topic_generations``)."""
        return RequestReader(self.service, topic, group_id, from_start=True)

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            *self.topic_names,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group_id,
            auto_offset_reset="earliest" if self.from_start else "latest",
            # a generation is deleted once drained: an auto-commit to a deleted topic is retried forever and its
            # consumer never stops, so a generation's reader commits itself, once per fetched batch
            enable_auto_commit=not self.from_start,
            fetch_max_wait_ms=self.settings.rpc_fetch_max_wait_ms,
            request_timeout_ms=30000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        idle_waits(self.consumer, self.settings)
        self._task = asyncio.create_task(self._run(), name=f"serving-{self.topic_names[0]}")

    def assigned(self) -> bool:
        return bool(self.consumer is not None and self.consumer.assignment())

    async def _run(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=1000)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a broker hiccup: keep reading
                log.warning("reading requests failed", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    await self._slots.acquire()
                    task = asyncio.create_task(self._one(record))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
            if self.from_start and batches:
                try:
                    await self.consumer.commit()  # what was taken, as the auto-commit does (ACK_FIRST)
                except Exception:  # noqa: BLE001 - the next batch's commit covers it
                    log.warning("committing taken requests failed", exc_info=True)

    async def _one(self, record: ConsumerRecord) -> None:
        try:
            await self.consume(record)
        finally:
            self._slots.release()

    async def consume(self, record: ConsumerRecord) -> None:
        """Serves one record under a span whose parent is the request's ``traceparent``; a record that cannot
        be served (not a request envelope) is dead-lettered."""
        carrier = {k: v.decode(errors="replace") for k, v in (record.headers or ()) if k == "traceparent"}
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
        return await committed_to_end(self.consumer, self.topic_names[0])

    async def stop(self, drain_s: float = 0.0) -> None:
        """Stops taking requests (after up to ``drain_s`` for the topic to be drained), lets the ones being
        served finish, then leaves the group (committing what was taken)."""
        if drain_s and self.consumer is not None:
            await wait_drained(self.drained, drain_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            self.consumer = None
