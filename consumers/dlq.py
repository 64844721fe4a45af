"""Dead letters: a message that cannot be decoded or handled (after in-process retries) is
published to the ``dlq`` topic as received, with the error in its headers, and the consumer
goes on with the next message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka.structs import ConsumerRecord
from faststream import BaseMiddleware
from faststream.message import StreamMessage

from infra.threaded_consumer import KafkaRecord
from producers.publisher import EventPublisher
from schemas.common import iso, utcnow

log = logging.getLogger("modelbus.dlq")


def _headers(record: ConsumerRecord | KafkaRecord, error: BaseException, group: str, attempts: int) -> dict[str, str]:
    original = {k: v.decode(errors="replace") for k, v in (record.headers or ()) if k != "traceparent"}
    return original | {
        "x-error": f"{error.__class__.__name__}: {error}"[:2000],
        "x-error-type": error.__class__.__name__,
        "x-original-topic": record.topic,
        "x-original-partition": str(record.partition),
        "x-original-offset": str(record.offset),
        "x-consumer-group": group,
        "x-attempts": str(attempts),
        "x-failed-at": iso(utcnow()),
    }


async def dead_letter(
    publisher: EventPublisher,
    record: ConsumerRecord | KafkaRecord,
    error: BaseException,
    *,
    group: str,
    attempts: int = 1,
) -> None:
    key = record.key.decode(errors="replace") if isinstance(record.key, bytes) else str(record.key or "")
    value = record.value if isinstance(record.value, bytes) else bytes(str(record.value), "utf-8")
    await publisher.publish_raw("dlq", value, key=key or "unknown", headers=_headers(record, error, group, attempts))
    log.warning(
        "dead-lettered message",
        extra={"topic": record.topic, "offset": record.offset, "group": group, "error": error.__class__.__name__},
    )


def dlq_middleware(publisher: EventPublisher, group: str, retries: int) -> Callable[..., BaseMiddleware]:
    """FastStream middleware factory for single-message subscribers: retry ``retries`` times,
    then dead-letter and acknowledge so the partition keeps moving."""

    class DeadLetterMiddleware(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
            attempt = 0
            while True:
                attempt += 1
                try:
                    return await call_next(msg)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any handler failure must not stop the consumer
                    if attempt <= retries:
                        await asyncio.sleep(0.05 * attempt)
                        continue
                    raw = msg.raw_message
                    records = raw if isinstance(raw, tuple) else (raw,)
                    for record in records:
                        await dead_letter(publisher, record, exc, group=group, attempts=attempt)
                    return None

    return DeadLetterMiddleware


async def raw_records(msg: StreamMessage[Any]) -> tuple[ConsumerRecord, ...]:
    """Decoder that hands handlers the Kafka records themselves (value, key, headers, offsets).
    Cheaper than a ``Context("message")`` parameter, which fast_depends resolves in a worker thread
    for every message (a thread hop on the request/reply path)."""
    raw = msg.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


async def raw_body(msg: StreamMessage[Any]) -> bytes:
    """Decoder that hands handlers the raw bytes; they decode envelopes themselves so a
    malformed message is seen (and dead-lettered) by modelbus, not swallowed by the framework."""
    return msg.body
