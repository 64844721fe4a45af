"""What every consumer needs, passed explicitly (no module-level state)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
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

    raw_decoder = staticmethod(raw_body)
    records_decoder = staticmethod(raw_records)


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
) -> Any:
    """The subscriber decorator of the batch consumers (projector, archive, ingest, analyser): catalog topic
    names, from the earliest offset, handlers get the Kafka records (see ``records_decoder``).

    ``background`` consumers (nobody waits on them) fetch at ``background_fetch_max_wait_ms`` and ask the
    broker for ``BACKGROUND_FETCH_MIN_BYTES``: under a steady trickle of events the broker holds each fetch
    until the wait expires instead of answering every few messages, so one fetch, one decode pass and one
    database write carry a whole interval of events. The others poll at ``fetch_max_wait_ms`` and take
    whatever has arrived."""
    settings = deps.settings
    return broker.subscriber(
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
    )


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
