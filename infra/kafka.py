"""Kafka: topic creation from the catalog and broker construction with telemetry."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from functools import cache
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
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

IDLE_CONNECTION_MS = 7 * 24 * 3600 * 1000
"""How long a client keeps a connection nobody uses (aiokafka's default: 9 minutes). A closed connection costs
the next message a reconnection (TCP, API versions, metadata), and after a long pause the first request
crosses three of them (the API's producer, the worker's reply producer, the paused reply reader), so an idle
stack would answer its first request late for exactly the reason it was idle. An open idle connection costs
nothing. Applied to every aiokafka producer and consumer of the process (their default) and to FastStream's."""
for _client in (AIOKafkaProducer, AIOKafkaConsumer):
    if (_client.__init__.__kwdefaults__ or {}).get("connections_max_idle_ms") == 540000:
        _client.__init__.__kwdefaults__["connections_max_idle_ms"] = IDLE_CONNECTION_MS


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
    broker = KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        max_request_size=4 * 1024 * 1024,
        linger_ms=0,
        request_timeout_ms=30000,
        connections_max_idle_ms=IDLE_CONNECTION_MS,
        middlewares=mws,
        logger=logging.getLogger(f"modelbus.{client_id}"),
        log_level=logging.DEBUG,
    )
    _SETTINGS[broker] = settings
    return broker


_SETTINGS: weakref.WeakKeyDictionary[KafkaBroker, Settings] = weakref.WeakKeyDictionary()
"""the settings each broker of ``make_broker`` was made with (for the idle waits of its subscribers)"""

IDLE_FACTOR = 10
"""an idle consumer waits this many times its fetch wait per fetch (capped by ``idle_fetch_max_wait_ms``)"""


def idle_wait_ms(busy_ms: int, settings: Settings) -> int:
    """The fetch wait of an idle consumer whose busy wait is ``busy_ms`` (``busy_ms`` itself when idle waits are
    off)."""
    return max(busy_ms, min(busy_ms * IDLE_FACTOR, settings.idle_fetch_max_wait_ms))


def idle_waits(consumer: Any, settings: Settings, subscriber: Any = None) -> bool:
    """Makes an aiokafka consumer wait longer per fetch while it is idle.

    Tansu answers a fetch only when its wait expires and spends CPU on every fetch, empty or not, so a consumer
    costs (broker and client CPU) in proportion to its fetch rate even when nothing happens. After
    ``idle_after_seconds`` of fetches that brought nothing the consumer's fetch wait becomes
    ``min(IDLE_FACTOR x its wait, idle_fetch_max_wait_ms)``; the first fetch that brings a record restores the
    short wait for the next fetch. So the first message after a pause waits at most one idle wait (50 ms for the
    request consumers at their 5 ms wait), and steady traffic, where every fetch brings records, keeps the short
    wait. A batch ``subscriber``'s poll loop (``getmany`` with ``batch_timeout_ms``, then as long a sleep when
    empty) slows down with it: idle, it wakes every idle wait instead of every 2 x 10 ms.
    Returns False when the setting is off (0) or the consumer has no fetcher to adjust."""
    fetcher = getattr(consumer, "_fetcher", None)
    if not settings.idle_fetch_max_wait_ms or fetcher is None or getattr(fetcher, "_modelbus_idle", False):
        return False
    busy = int(fetcher._fetch_max_wait_ms)
    idle = idle_wait_ms(busy, settings)
    if idle == busy:
        return False
    proc = fetcher._proc_fetch_request
    last_data = time.monotonic()
    batch_busy = getattr(subscriber, "batch_timeout_ms", None)

    async def proc_fetch_request(assignment: Any, node_id: Any, request: Any) -> Any:
        nonlocal last_data
        has_new_data = await proc(assignment, node_id, request)
        now = time.monotonic()
        if has_new_data:
            last_data = now
            fetcher._fetch_max_wait_ms = busy
            if batch_busy is not None:
                subscriber.batch_timeout_ms = batch_busy
        elif now - last_data > settings.idle_after_seconds:
            fetcher._fetch_max_wait_ms = idle
            if batch_busy is not None:
                subscriber.batch_timeout_ms = max(batch_busy, idle // 2)
        return has_new_data

    fetcher._proc_fetch_request = proc_fetch_request
    fetcher._modelbus_idle = True
    return True


def subscriber_consumers(broker: KafkaBroker) -> list[tuple[Any, Any]]:
    """(subscriber, aiokafka consumer) of each consumer of a started broker's subscribers."""
    out = []
    for sub in broker.subscribers:
        group = getattr(sub, "consumer_subgroup", None) or [getattr(sub, "consumer", None)]
        out.extend((sub, c) for c in group if c is not None)
    return out


async def start_broker(broker: KafkaBroker) -> None:
    """``broker.start()`` starts subscribers one after another, and each waits ~5 s for its
    consumer group on Tansu; starting them together makes start-up one wait, not one per group."""
    await broker.connect()
    await asyncio.gather(*(sub.start() for sub in broker.subscribers))
    await asyncio.gather(*(pub.start() for pub in broker.publishers))
    broker.running = True
    if (settings := _SETTINGS.get(broker)) is not None:
        for sub, consumer in subscriber_consumers(broker):
            idle_waits(consumer, settings, sub)
