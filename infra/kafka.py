"""Kafka: topic creation from the catalog and broker construction with telemetry."""

from __future__ import annotations

import asyncio
import logging
from functools import cache

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from opentelemetry import trace
from prometheus_client import REGISTRY

from infra.settings import Settings
from schemas.topics import TOPICS

log = logging.getLogger("modelbus.kafka")


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every catalog topic that does not exist yet; returns the full names."""
    assert settings.kafka_bootstrap
    names = [settings.topic(short) for short in TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=1 if spec.one_partition else settings.topic_partitions, replication_factor=1)
            for name, spec in zip(names, TOPICS.values(), strict=True)
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another process won the race
                pass
    finally:
        await admin.close()
    return names


@cache
def _prometheus_middleware() -> KafkaPrometheusMiddleware:
    """One per process: its collectors live in the global Prometheus registry."""
    return KafkaPrometheusMiddleware(registry=REGISTRY, app_name="modelbus")


def make_broker(
    settings: Settings, *, client_id: str, middlewares: tuple = (), with_metrics: bool = True
) -> KafkaBroker:
    """A FastStream broker: acks=all, traceparent in headers, Prometheus message metrics."""
    assert settings.kafka_bootstrap
    mws: list = [KafkaTelemetryMiddleware(tracer_provider=trace.get_tracer_provider())]
    if with_metrics:
        mws.append(_prometheus_middleware())
    mws.extend(middlewares)
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        max_request_size=4 * 1024 * 1024,
        linger_ms=0,
        request_timeout_ms=30000,
        middlewares=mws,
        logger=logging.getLogger(f"modelbus.{client_id}"),
        log_level=logging.DEBUG,
    )


async def start_broker(broker: KafkaBroker) -> None:
    """``broker.start()`` starts subscribers one after another, and each waits ~5 s for its
    consumer group on Tansu; starting them together makes start-up one wait, not one per group."""
    await broker.connect()
    await asyncio.gather(*(sub.start() for sub in broker.subscribers))
    await asyncio.gather(*(pub.start() for pub in broker.publishers))
    broker.running = True
