"""What every consumer needs, passed explicitly (no module-level state)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from consumers.dlq import dead_letter, raw_body, raw_records
from infra.settings import Settings
from producers.publisher import EventPublisher
from schemas.envelope import Envelope

BACKGROUND_FETCH_MIN_BYTES = 1 << 20
"""what background consumers ask a fetch to carry before the broker answers early (see ``batch_subscriber``)"""


@dataclass
class Deps:
    settings: Settings
    db: AsyncDatabase
    publisher: EventPublisher
    worker_id: str
    handled: dict[tuple[str, int], int] = field(default_factory=dict)
    """(topic, partition) -> the offset after the last record a batch consumer finished handling (for drain)"""

    raw_decoder = staticmethod(raw_body)
    records_decoder = staticmethod(raw_records)

    def mark_handled(self, records: Iterable[ConsumerRecord]) -> None:
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset + 1 > self.handled.get(tp, 0):
                self.handled[tp] = record.offset + 1


def batch_subscriber(
    broker: KafkaBroker,
    deps: Deps,
    topics: Iterable[str],
    *,
    group: str,
    background: bool,
    title: str,
    description: str,
    max_records: int = 2000,
    batch_timeout_ms: int | None = None,
    ack_policy: AckPolicy | None = None,
) -> Any:
    """The subscriber decorator of the batch consumers (projector, archive, ingest, analyser): catalog topic
    names, from the earliest offset, handlers get the Kafka records (see ``records_decoder``).

    ``background`` consumers (nobody waits on them) fetch at ``background_fetch_max_wait_ms`` and ask the
    broker for ``BACKGROUND_FETCH_MIN_BYTES``: under a steady trickle of events the broker holds each fetch
    until the wait expires instead of answering every few messages, so one fetch, one decode pass and one
    database write carry a whole interval of events. The others poll at ``fetch_max_wait_ms`` and take
    whatever has arrived. Every handled batch is noted in ``deps.handled`` (see :func:`drain`)."""
    settings = deps.settings
    extra: dict[str, Any] = {"ack_policy": ack_policy} if ack_policy is not None else {}
    subscriber = broker.subscriber(
        *(settings.topic(t) for t in topics),
        group_id=group,
        batch=True,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.background_fetch_max_wait_ms if background else settings.fetch_max_wait_ms,
        fetch_min_bytes=BACKGROUND_FETCH_MIN_BYTES if background else 1,
        batch_timeout_ms=batch_timeout_ms if batch_timeout_ms is not None else settings.projection_batch_ms,
        max_records=max_records,
        decoder=deps.records_decoder,
        title=title,
        description=description,
        **extra,
    )

    def decorate(func: Callable[[Any], Awaitable[None]]) -> Any:
        @functools.wraps(func)
        async def handler(records: Any) -> None:
            await func(records)
            deps.mark_handled(records)

        return subscriber(handler)

    return decorate


async def drain(broker: KafkaBroker, deps: Deps, timeout_s: float = 10.0) -> bool:
    """Waits until this process's batch consumers have handled every record that was on their partitions when
    it was called (a graceful stop of the embedded stack, whose broker forgets its topics, loses nothing that
    was published before). Returns False if ``timeout_s`` passed first."""
    ends: dict[tuple[str, int], int] = {}
    for sub in broker.subscribers:
        consumer = getattr(sub, "consumer", None)
        if consumer is None or not isinstance(sub, BatchSubscriber):
            continue
        parts = consumer.assignment()
        if parts:
            for tp, end in (await consumer.end_offsets(list(parts))).items():
                if end > 0:
                    ends[(tp.topic, tp.partition)] = end
    deadline = asyncio.get_running_loop().time() + timeout_s
    while any(deps.handled.get(tp, 0) < end for tp, end in ends.items()):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def event_type(record: ConsumerRecord) -> str | None:
    """The ``ce_type`` header (set by every modelbus publisher), without decoding the body."""
    for key, value in record.headers or ():
        if key == "ce_type":
            return value.decode(errors="replace")
    return None


async def decode_batch(
    deps: Deps, records: tuple[ConsumerRecord, ...], group: str, *, wanted: Collection[str] | None = None
) -> list[tuple[ConsumerRecord, Envelope]]:
    """Envelopes of a batch in order; records that are not valid envelopes go to the DLQ.
    With ``wanted``, records whose ``ce_type`` header names another event type are skipped undecoded."""
    out: list[tuple[ConsumerRecord, Envelope]] = []
    for record in records:
        if wanted is not None and (kind := event_type(record)) is not None and kind not in wanted:
            continue
        try:
            out.append((record, Envelope.from_bytes(record.value)))
        except (ValidationError, ValueError, TypeError) as exc:
            await dead_letter(deps.publisher, record, exc, group=group)
    return out
