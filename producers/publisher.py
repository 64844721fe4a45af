"""Typed event publishing: every message on a modelbus topic goes through here."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from opentelemetry import propagate

from infra.kafka import start_broker
from infra.settings import Settings
from schemas.envelope import Envelope
from schemas.topics import TOPICS

log = logging.getLogger("modelbus.publisher")


class BrokerUnavailable(RuntimeError):
    """Kafka did not acknowledge the message: nothing was accepted."""


def envelope_headers(env: Envelope) -> dict[str, str]:
    return {"content-type": "application/cloudevents+json", "ce_type": env.type, "ce_id": env.id}


class EventPublisher:
    """Publishes envelopes keyed by entity id and waits for the broker's acknowledgement (acks=all).

    Two paths to the same broker: ``publish`` / ``publish_raw`` go through FastStream (a producer span
    and Prometheus message metrics per message); ``publish_direct`` sends with a plain aiokafka producer
    and only injects the ``traceparent`` header, so consumer spans still join the caller's trace. The
    direct path is for the per-prediction messages of the request/reply path (requests, replies,
    ``predict.served``), where FastStream's publish middlewares cost more CPU than the send itself.

    ``publish_direct(..., lingering=True)`` goes through a second plain producer that waits
    ``linger_ms`` to put concurrent messages into one record batch per partition. That is for events
    nobody waits on one by one (``predict.served``): fewer produce requests, and fewer batches stored.
    On the embedded Tansu broker a fetch that returns data costs time in proportion to the batches
    already stored in the partition, so small batches make every later read slower."""

    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self._connected = False
        self._lock = asyncio.Lock()
        self._direct: AIOKafkaProducer | None = None
        self._lingering: AIOKafkaProducer | None = None

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

    async def _direct_producer(self, lingering: bool) -> AIOKafkaProducer:
        async with self._lock:
            producer = self._lingering if lingering else self._direct
            if producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    client_id="modelbus-lingering" if lingering else "modelbus-direct",
                    acks="all",
                    enable_idempotence=self.settings.kafka_idempotence,
                    max_request_size=4 * 1024 * 1024,
                    linger_ms=self.settings.served_linger_ms if lingering else 0,
                    # a bulk prediction's 1,000 served events fit in one record batch per partition: with the
                    # default 16 KiB each send waited for a batch of ~25 to drain (half the worker's time)
                    max_batch_size=512 * 1024 if lingering else 16384,
                    request_timeout_ms=30000,
                )
                try:
                    await asyncio.wait_for(producer.start(), timeout=self.settings.request_timeout_seconds)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    raise BrokerUnavailable(f"Kafka is unreachable: {exc.__class__.__name__}") from exc
                if lingering:
                    self._lingering = producer
                else:
                    self._direct = producer
            return producer

    async def publish_direct(
        self,
        topic: str,
        body: bytes,
        *,
        key: str,
        headers: dict[str, str] | None = None,
        lingering: bool = False,
    ) -> None:
        """Like ``publish_raw`` (acknowledged, same errors), without FastStream's per-message middlewares;
        ``lingering`` batches it with the messages sent in the next ``served_linger_ms``."""
        (error,) = await self.publish_many_direct(topic, [(body, key, headers or {})], lingering=lingering)
        if error is not None:
            raise error

    async def publish_many_direct(
        self, topic: str, items: list[tuple[bytes, str, dict[str, str]]], *, lingering: bool = False
    ) -> list[BrokerUnavailable | None]:
        """Many messages ``(body, key, headers)`` at once (a bulk prediction's served events): each is handed to
        the producer's batches, then all acknowledgements are awaited together; one trace context for all.
        Returns per message ``None`` or the error (what ``publish_direct`` raises)."""
        producer = (self._lingering if lingering else self._direct) or await self._direct_producer(lingering)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        name = self._full_name(topic)
        futures = []
        try:
            for body, key, headers in items:
                encoded = [(k, v.encode()) for k, v in (headers | carrier).items()]
                futures.append(await producer.send(name, body, key=key.encode(), headers=encoded))
            results = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), timeout=self.settings.request_timeout_seconds
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            return [_unacknowledged(exc)] * len(items)
        return [_unacknowledged(r) if isinstance(r, BaseException) else None for r in results]

    def _full_name(self, topic: str) -> str:
        """A catalog name gets the prefix; a reply topic is already a full name."""
        return self.settings.topic(topic) if topic in TOPICS else topic

    async def flush(self) -> None:
        """Sends what the plain producers still hold (the lingering one gathers served events for a while)."""
        for producer in (self._direct, self._lingering):
            if producer is not None:
                await producer.flush()

    async def close(self) -> None:
        for producer in (self._direct, self._lingering):
            if producer is not None:
                await producer.stop()
        self._direct = self._lingering = None
        if self._connected:
            await self.broker.stop()
            self._connected = False


def _unacknowledged(exc: BaseException) -> BrokerUnavailable:
    error = BrokerUnavailable(f"Kafka did not acknowledge the message: {exc.__class__.__name__}")
    error.__cause__ = exc
    return error
