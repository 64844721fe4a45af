"""Tiered rate limits shared by every API process (counters in MongoDB): requests per minute,
per day, and requests in flight, exactly the seed's tiers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from infra import mongo

TIERS: dict[str, tuple[int, int | None, int]] = {
    # tier: (per minute, per day (None = unlimited), concurrent)
    "free": (10, 1_000, 2),
    "premium": (100, 50_000, 10),
    "enterprise": (1_000, None, 100),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after: int = 0
    reason: str = ""
    slot: str | None = None

    def headers(self) -> dict[str, str]:
        out = {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
               "X-RateLimit-Reset": str(self.reset_epoch)}
        if not self.allowed:
            out |= {"Retry-After": str(self.retry_after), "X-RateLimit-Retry-After": str(self.retry_after)}
        return out


async def acquire(db: AsyncDatabase, principal: str, tier: str, now: datetime | None = None) -> Decision:
    """Counts this request against the minute and day windows and takes a concurrency slot.
    A refused request takes no slot (it is still counted: fixed windows count attempts)."""
    per_minute, per_day, concurrent = TIERS.get(tier, TIERS["free"])
    now = now or datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    doc = await db[mongo.RATE_LIMITS].find_one_and_update(
        {"_id": f"{principal}:{now:%Y%m%d}"},
        {"$inc": {"day": 1, f"m.{minute}": 1}, "$setOnInsert": {"expires_at": midnight + timedelta(days=1)}},
        upsert=True, return_document=ReturnDocument.AFTER, projection={"day": 1, f"m.{minute}": 1},
    )
    in_minute = int(doc["m"][str(minute)])
    in_day = int(doc["day"])
    reset = int(next_minute.timestamp())
    remaining = max(0, per_minute - in_minute)
    if in_minute > per_minute:
        wait = max(1, int((next_minute - now).total_seconds() + 0.999))
        return Decision(False, per_minute, 0, reset, wait, f"{per_minute} requests per minute")
    if per_day is not None and in_day > per_day:
        wait = max(1, int((midnight - now).total_seconds() + 0.999))
        return Decision(False, per_minute, remaining, reset, wait, f"{per_day} requests per day")
    slot = uuid.uuid4().hex
    await db[mongo.IN_FLIGHT].insert_one(
        {"_id": slot, "principal": principal, "expires_at": now + timedelta(minutes=5)}
    )
    if await db[mongo.IN_FLIGHT].count_documents({"principal": principal}) > concurrent:
        await db[mongo.IN_FLIGHT].delete_one({"_id": slot})
        return Decision(False, per_minute, remaining, reset, 1, f"{concurrent} concurrent requests")
    return Decision(True, per_minute, remaining, reset, slot=slot)


async def release(db: AsyncDatabase, slot: str) -> None:
    await db[mongo.IN_FLIGHT].delete_one({"_id": slot})
