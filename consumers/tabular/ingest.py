"""Ingest: records from ``data.records`` (API batches and streaming producers) into the columnar
record blocks. A record that fails validation is dead-lettered; the rest of the batch is stored."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from faststream.kafka import KafkaBroker

from consumers.deps import Deps, batch_subscriber, decode_batch
from consumers.dlq import dead_letter
from consumers.serving import ServingService
from infra.tabular import records
from infra.tabular.record_validation import validate_record
from infra.tabular.records import insert_records
from schemas.data import RECORD, RECORDS_BATCH, RecordsBatch

log = logging.getLogger("modelbus.ingest")


async def prepare(deps: Deps) -> None:
    """The process that stores streamed blocks repairs their index, once, before it consumes."""
    await records.sync_block_index(deps.db)


def register(broker: KafkaBroker, deps: Deps, serving: ServingService | None = None) -> None:
    group = deps.settings.group("ingest")

    @batch_subscriber(
        broker,
        deps,
        ["data.records"],
        group=group,
        background=True,
        batch_timeout_ms=50,
        title="ingest",
        description="Stores records from data.records as columnar blocks (bad records go to the DLQ).",
    )
    async def ingest(records: Any) -> None:
        stream: list[dict[str, Any]] = []
        stream_ids: list[str] = []
        for record, env in await decode_batch(deps, records, group):
            try:
                if env.type == RECORDS_BATCH:
                    batch = env.payload(RecordsBatch)
                    rows = [validate_record(r) for r in batch.records]
                    await insert_records(deps.db, rows, source=batch.source, block_id=env.id)
                elif env.type == RECORD:
                    stream.append(validate_record({k: env.data.get(k) for k in ("timestamp", "features", "label")}))
                    stream_ids.append(env.id)
                else:
                    raise ValueError(f"unexpected event type {env.type!r} on data.records")
            except (ValueError, TypeError) as exc:
                await dead_letter(deps.publisher, record, exc, group=group)
        if stream:
            block_id = "stream-" + hashlib.sha1(",".join(stream_ids).encode()).hexdigest()[:24]
            stored = await insert_records(deps.db, stream, source="stream", block_id=block_id)
            log.debug("streamed records stored", extra={"records": stored})
