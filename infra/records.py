"""Transaction records are stored as columnar blocks of up to 1,000 records sorted by time
(like MongoDB's time-series buckets): ``{start, end, n, ts[epoch ms], label[-1|0|1],
features{name: [values]}}``. On the embedded database this reads 100k records in ~0.5 s
where one document per record takes ~7 s; the same layout works on MongoDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from infra import mongo
from schemas.common import utcnow

BLOCK_SIZE = 1000
MISSING_LABEL = -1


def epoch_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def pack_blocks(
    records: Sequence[dict[str, Any]], *, source: str, block_size: int = BLOCK_SIZE, block_id: str | None = None
) -> list[dict[str, Any]]:
    """Records ``{timestamp, features, label?}`` to block documents. With ``block_id`` the blocks
    get deterministic ids (``block_id``, ``block_id:1``, …) so writing them twice is a no-op."""
    recs = sorted(records, key=lambda r: r["timestamp"])
    now = utcnow()
    blocks = []
    for i in range(0, len(recs), block_size):
        chunk = recs[i : i + block_size]
        names = sorted({k for r in chunk for k in r["features"]})
        labels = [MISSING_LABEL if r.get("label") is None else int(r["label"]) for r in chunk]
        blocks.append(
            {
                **({"_id": block_id if i == 0 else f"{block_id}:{i // block_size}"} if block_id else {}),
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


async def insert_records(
    db: AsyncDatabase, records: Sequence[dict[str, Any]], *, source: str, block_id: str | None = None
) -> int:
    """Stores records as blocks; blocks that already exist (same deterministic id) are skipped.
    Returns the number of records newly stored."""
    blocks = pack_blocks(records, source=source, block_id=block_id)
    if not blocks:
        return 0
    try:
        await db[mongo.RECORD_BLOCKS].insert_many(blocks, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        skipped = {e["index"] for e in errors}
        return sum(b["n"] for i, b in enumerate(blocks) if i not in skipped)
    return sum(b["n"] for b in blocks)


def overlapping(start: datetime, end: datetime) -> dict[str, Any]:
    """Blocks that may hold records with start <= timestamp < end."""
    return {"start": {"$lt": end}, "end": {"$gte": start}}


async def count_records(db: AsyncDatabase, start: datetime, end: datetime) -> int:
    """Blocks wholly inside the period count by their size; only the (few) boundary blocks are read."""
    lo, hi = epoch_ms(start), epoch_ms(end)
    inside = await (
        await db[mongo.RECORD_BLOCKS].aggregate(
            [
                {"$match": {"start": {"$gte": start}, "end": {"$lt": end}}},
                {"$group": {"_id": None, "n": {"$sum": "$n"}}},
            ]
        )
    ).to_list()
    total = int(inside[0]["n"]) if inside else 0
    boundary = {"$and": [overlapping(start, end), {"$or": [{"start": {"$lt": start}}, {"end": {"$gte": end}}]}]}
    async for block in db[mongo.RECORD_BLOCKS].find(boundary, {"ts": 1}):
        total += sum(1 for t in block["ts"] if lo <= t < hi)
    return total


async def extent(db: AsyncDatabase) -> tuple[int, datetime | None, datetime | None]:
    """How many records exist, and the first and last timestamp."""
    pipeline = [{"$group": {"_id": None, "n": {"$sum": "$n"}, "first": {"$min": "$start"}, "last": {"$max": "$end"}}}]
    rows = await (await db[mongo.RECORD_BLOCKS].aggregate(pipeline)).to_list()
    if not rows:
        return 0, None, None
    return int(rows[0]["n"]), rows[0]["first"], rows[0]["last"]


async def summary(db: AsyncDatabase, start: datetime, end: datetime) -> dict[str, Any]:
    """Record count, label rate and feature names/types for start <= timestamp < end."""
    lo, hi = epoch_ms(start), epoch_ms(end)
    count = labelled = positives = 0
    first: int | None = None
    last: int | None = None
    types: dict[str, str] = {}
    cursor = db[mongo.RECORD_BLOCKS].find(overlapping(start, end), {"ts": 1, "label": 1, "features": 1})
    async for block in cursor:
        keep = [i for i, t in enumerate(block["ts"]) if lo <= t < hi]
        if not keep:
            continue
        count += len(keep)
        labels = [block["label"][i] for i in keep]
        labelled += sum(1 for v in labels if v != MISSING_LABEL)
        positives += sum(1 for v in labels if v == 1)
        first = block["ts"][keep[0]] if first is None else min(first, block["ts"][keep[0]])
        last = block["ts"][keep[-1]] if last is None else max(last, block["ts"][keep[-1]])
        for name, values in block["features"].items():
            present = [values[i] for i in keep if values[i] is not None]
            kind = ("integer" if all(isinstance(v, int) for v in present) else "number") if present else "missing"
            if types.get(name) not in (None, kind):
                kind = "number" if {types[name], kind} <= {"integer", "number"} else "mixed"
            types[name] = kind
    return {
        "record_count": count,
        "labelled_count": labelled,
        "label_rate": round(positives / labelled, 6) if labelled else None,
        "first_timestamp": None if first is None else datetime.fromtimestamp(first / 1000, UTC),
        "last_timestamp": None if last is None else datetime.fromtimestamp(last / 1000, UTC),
        "features": [{"name": n, "type": types[n]} for n in sorted(types)],
    }
