"""Transaction records are stored as columnar blocks of up to 1,000 records sorted by time
(like MongoDB's time-series buckets): ``{start, end, n, ts[epoch ms], label[-1|0|1],
features{name: [values]}}``. On the embedded database this reads 100k records in ~0.5 s
where one document per record takes ~7 s; the same layout works on MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from infra import mongo
from schemas.common import utcnow

BLOCK_SIZE = 1000
MISSING_LABEL = -1


def epoch_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def pack_blocks(
    records: Sequence[dict[str, Any]], *, source: str, block_size: int = BLOCK_SIZE
) -> list[dict[str, Any]]:
    """Records ``{timestamp, features, label?}`` to block documents."""
    recs = sorted(records, key=lambda r: r["timestamp"])
    now = utcnow()
    blocks = []
    for i in range(0, len(recs), block_size):
        chunk = recs[i : i + block_size]
        names = sorted({k for r in chunk for k in r["features"]})
        labels = [MISSING_LABEL if r.get("label") is None else int(r["label"]) for r in chunk]
        blocks.append(
            {
                "start": chunk[0]["timestamp"],
                "end": chunk[-1]["timestamp"],
                "n": len(chunk),
                "labelled": sum(1 for v in labels if v != MISSING_LABEL),
                "positives": sum(1 for v in labels if v == 1),
                "ts": [epoch_ms(r["timestamp"]) for r in chunk],
                "label": labels,
                "features": {n: [r["features"].get(n) for r in chunk] for n in names},
                "source": source,
                "ingested_at": now,
            }
        )
    return blocks


async def insert_records(db: AsyncDatabase, records: Sequence[dict[str, Any]], *, source: str) -> int:
    blocks = pack_blocks(records, source=source)
    if blocks:
        await db[mongo.RECORD_BLOCKS].insert_many(blocks, ordered=True)
    return sum(b["n"] for b in blocks)


def overlapping(start: datetime, end: datetime) -> dict[str, Any]:
    """Blocks that may hold records with start <= timestamp < end."""
    return {"start": {"$lt": end}, "end": {"$gte": start}}


async def count_records(db: AsyncDatabase, start: datetime, end: datetime) -> int:
    lo, hi = epoch_ms(start), epoch_ms(end)
    total = 0
    async for block in db[mongo.RECORD_BLOCKS].find(overlapping(start, end), {"n": 1, "start": 1, "end": 1, "ts": 1}):
        if block["start"] >= start and block["end"] < end:
            total += block["n"]
        else:
            total += sum(1 for t in block["ts"] if lo <= t < hi)
    return total


async def extent(db: AsyncDatabase) -> tuple[int, datetime | None, datetime | None]:
    """How many records exist, and the first and last timestamp."""
    pipeline = [{"$group": {"_id": None, "n": {"$sum": "$n"}, "first": {"$min": "$start"}, "last": {"$max": "$end"}}}]
    rows = await (await db[mongo.RECORD_BLOCKS].aggregate(pipeline)).to_list()
    if not rows:
        return 0, None, None
    return int(rows[0]["n"]), rows[0]["first"], rows[0]["last"]
