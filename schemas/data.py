"""Transaction records on the ``data.records`` topic."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.common import document_zero_bounds
from schemas.envelope import Payload

RECORDS_BATCH = "modelbus.data.batch.ingested"
RECORD = "modelbus.data.record.ingested"
MAX_BATCH = 10_000
CHUNK = 1_000


class RecordsBatch(Payload):
    """Up to 1,000 validated records accepted together through ``POST /v1/ml/data``
    (a larger batch is split into several of these; the batch is all-or-nothing)."""

    batch_id: str
    chunk: int
    chunks: int
    source: str
    records: list[dict[str, Any]] = Field(description="{timestamp, features, label?}")


class RecordIngested(Payload):
    """One record from a streaming producer."""

    timestamp: str
    features: dict[str, float | int | bool]
    label: int | None = None
    source: str = "stream"


document_zero_bounds(globals())
