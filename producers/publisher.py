"""Typed event publishing: every message on a modelbus topic goes through here."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException
from faststream.kafka import KafkaBroker
from opentelemetry import propagate

from infra.kafka import start_broker
from infra.loop_producer import LoopProducer, producer_config
from infra.settings import Settings
from schemas.envelope import Envelope
from schemas.topics import TOPICS

log = logging.getLogger("modelbus.publisher")


class BrokerUnavailable(RuntimeError):
    """Kafka did not acknowledge the message: nothing was accepted."""


def envelope_headers(env: Envelope) -> dict[str, str]:
    return {"content-type": "application/cloudevents+json", "ce_type": env.type, "ce_id": env.id}


class EventPublisher:
    """Publishes envelopes keyed by entity id; a message counts as published once the broker acknowledged it
    (acks=all).

    Two paths to the same broker: ``publish`` / ``publish_raw`` go through FastStream (a producer span and
    Prometheus message metrics per message) and return once the message is acknowledged; ``send_direct`` hands
    the message to a librdkafka producer (``infra.loop_producer``), injects only the ``traceparent`` header (so
    consumer spans still join the caller's trace) and returns the acknowledgement as a future, settled up to
    ``loop_producer.REPORT_S`` later. The direct path is for the per-prediction messages of the request/reply path
    (requests, replies, ``predict.served``), where FastStream's publish middlewares and aiokafka's batching in
    Python cost more CPU than the send itself; its callers need not wait for the acknowledgement (a reply proves its
    request arrived) and use it to learn of failures. It is also the only path that writes topic generations
    (``infra.topic_generations``): its producers never ask the broker to create a topic.

    ``lingering=True`` goes through a second producer that waits ``served_linger_ms`` to put concurrent messages
    into one record batch per partition. That is for events nobody waits on one by one (``predict.served``): fewer
    produce requests, and fewer batches stored. On the embedded Tansu broker a fetch that returns data costs time
    in proportion to the batches already stored in the partition, so small batches make every later read
    slower."""

    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self._connected = False
        self._lock = asyncio.Lock()
        self._direct: LoopProducer | None = None
        self._lingering: LoopProducer | None = None

    async def connect(self, wait_s: float | None = None) -> None:
        async with self._lock:
            if not self._connected:
                try:
                    await asyncio.wait_for(
                        start_broker(self.broker), timeout=wait_s or self.settings.request_timeout_seconds
                    )
                except (KafkaError, OSError, TimeoutError) as exc:
                    raise BrokerUnavailable(f"Kafka is unreachable: {exc.__class__.__name__}") from exc
                self._connected = True

    async def publish(self, topic: str, env: Envelope, *, key: str | None = None) -> None:
        if topic not in TOPICS:
            raise KeyError(f"unknown topic {topic!r}")
        await self.publish_raw(topic, env.to_bytes(), key=key or env.subject, headers=envelope_headers(env))

    async def publish_raw(self, topic: str, body: bytes, *, key: str, headers: dict[str, str] | None = None) -> None:
        """``topic`` is a catalog name (the prefix is added) or, for replies, a full topic name."""
        if not self._connected:
            await self.connect()
        try:
            await asyncio.wait_for(
                self.broker.publish(
                    body,
                    self._full_name(topic),
                    key=key.encode(),
                    headers=headers or {},
                ),
                timeout=self.settings.request_timeout_seconds,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge the message: {exc.__class__.__name__}") from exc

    def _direct_producer(self, lingering: bool) -> LoopProducer:
        producer = self._lingering if lingering else self._direct
        if producer is None:
            config = producer_config(
                self.settings.kafka_bootstrap or "",
                "modelbus-lingering" if lingering else "modelbus-direct",
                linger_ms=self.settings.served_linger_ms if lingering else 0,
                timeout_ms=int(self.settings.request_timeout_seconds * 1000),
                **{"enable.idempotence": self.settings.kafka_idempotence},
            )
            try:
                producer = LoopProducer(config, error=_unacknowledged)
            except KafkaException as exc:
                raise BrokerUnavailable(f"Kafka producer: {exc}") from exc
            if lingering:
                self._lingering = producer
            else:
                self._direct = producer
        return producer

    def send_direct(
        self,
        topic: str,
        body: bytes,
        *,
        key: str,
        headers: dict[str, str] | None = None,
        lingering: bool = False,
    ) -> asyncio.Future[None]:
        """Hands one message to the direct producer (``lingering``: batched with the messages sent in the next
        ``served_linger_ms``). Returns its acknowledgement, which fails with ``BrokerUnavailable`` (at once when the
        producer refuses the message, its queue being full)."""
        (future,) = self.send_many_direct(topic, [(body, key, headers or {})], lingering=lingering)
        return future

    def send_many_direct(
        self, topic: str, items: list[tuple[bytes, str, dict[str, str]]], *, lingering: bool = False
    ) -> list[asyncio.Future[None]]:
        """Many messages ``(body, key, headers)`` at once (a bulk prediction's served events), one trace context
        for all; one acknowledgement each."""
        producer = self._direct_producer(lingering)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        name = self._full_name(topic)
        acks = []
        for body, key, headers in items:
            try:
                ack = producer.send(
                    name, body, key=key.encode(), headers=[(k, v.encode()) for k, v in (headers | carrier).items()]
                )
            except (KafkaException, BufferError) as exc:  # refused at once (its queue is full)
                ack = asyncio.get_running_loop().create_future()
                ack.set_exception(_unacknowledged(exc))
            acks.append(ack)
        return acks

    def _full_name(self, topic: str) -> str:
        """A catalog name gets the prefix; a reply topic is already a full name."""
        return self.settings.topic(topic) if topic in TOPICS else topic

    async def flush(self) -> None:
        """Sends what the direct producers still hold and settles their acknowledgements (the lingering one
        gathers served events for a while)."""
        for producer in (self._direct, self._lingering):
            if producer is not None:
                await producer.flush(self.settings.request_timeout_seconds)

    async def close(self) -> None:
        for producer in (self._direct, self._lingering):
            if producer is not None:
                await producer.close(self.settings.request_timeout_seconds)
        self._direct = self._lingering = None
        if self._connected:
            await self.broker.stop()
            self._connected = False


def _unacknowledged(exc: BaseException) -> BrokerUnavailable:
    error = BrokerUnavailable(f"Kafka did not acknowledge the message: {exc.__class__.__name__}")
    error.__cause__ = exc
    return error


def log_failures(acks: list[asyncio.Future[None]], what: str) -> None:
    """Logs (once, with a count) the messages among ``acks`` that the broker did not acknowledge, without waiting
    for them."""
    if not acks:
        return
    state = {"left": len(acks), "failed": 0, "error": ""}

    def done(future: asyncio.Future[None]) -> None:
        state["left"] -= 1
        if not future.cancelled() and future.exception() is not None:
            state["failed"] += 1
            state["error"] = state["error"] or str(future.exception())
        if state["left"] == 0 and state["failed"]:
            log.error("%s failed", what, extra={"failures": state["failed"], "error": state["error"]})

    for future in acks:
        future.add_done_callback(done)
