"""What every consumer needs, passed explicitly (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream.kafka.message import KafkaMessage
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from consumers.dlq import dead_letter, raw_body
from infra.settings import Settings
from producers.publisher import EventPublisher
from schemas.envelope import Envelope


@dataclass
class Deps:
    settings: Settings
    db: AsyncDatabase
    publisher: EventPublisher
    worker_id: str

    raw_decoder = staticmethod(raw_body)


def records_of(message: KafkaMessage) -> tuple[ConsumerRecord, ...]:
    raw: Any = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


async def decode_batch(deps: Deps, message: KafkaMessage, group: str) -> list[tuple[ConsumerRecord, Envelope]]:
    """Envelopes of a batch in order; records that are not valid envelopes go to the DLQ."""
    out: list[tuple[ConsumerRecord, Envelope]] = []
    for record in records_of(message):
        try:
            out.append((record, Envelope.from_bytes(record.value)))
        except (ValidationError, ValueError, TypeError) as exc:
            await dead_letter(deps.publisher, record, exc, group=group)
    return out
