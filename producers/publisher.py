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
    ``predict.served``), where FastStream's publish middlewares cost more CPU than the send itself."""

    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self._connected = False
        self._lock = asyncio.Lock()
        self._direct: AIOKafkaProducer | None = None

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

    async def _direct_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._direct is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    client_id="modelbus-direct",
                    acks="all",
                    enable_idempotence=self.settings.kafka_idempotence,
                    max_request_size=4 * 1024 * 1024,
                    linger_ms=0,
                    request_timeout_ms=30000,
                )
                try:
                    await asyncio.wait_for(producer.start(), timeout=self.settings.request_timeout_seconds)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    raise BrokerUnavailable(f"Kafka is unreachable: {exc.__class__.__name__}") from exc
                self._direct = producer
            return self._direct

    async def publish_direct(self, topic: str, body: bytes, *, key: str, headers: dict[str, str] | None = None) -> None:
        """Like ``publish_raw`` (acknowledged, same errors), without FastStream's per-message middlewares."""
        producer = self._direct or await self._direct_producer()
        carrier = dict(headers or {})
        propagate.inject(carrier)
        try:
            await asyncio.wait_for(
                producer.send_and_wait(
                    self._full_name(topic),
                    body,
                    key=key.encode(),
                    headers=[(k, v.encode()) for k, v in carrier.items()],
                ),
                timeout=self.settings.request_timeout_seconds,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"Kafka did not acknowledge the message: {exc.__class__.__name__}") from exc

    def _full_name(self, topic: str) -> str:
        """A catalog name gets the prefix; a reply topic is already a full name."""
        return self.settings.topic(topic) if topic in TOPICS else topic

    async def close(self) -> None:
        if self._direct is not None:
            await self._direct.stop()
            self._direct = None
        if self._connected:
            await self.broker.stop()
            self._connected = False
