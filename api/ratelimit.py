"""Tiered rate limits shared by every API process (counters in MongoDB): requests per minute,
per day, and requests in flight, exactly the seed's tiers."""

from __future__ import annotations

import asyncio
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


SLOT_TTL = timedelta(minutes=5)


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
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }
        if not self.allowed:
            out |= {"Retry-After": str(self.retry_after), "X-RateLimit-Retry-After": str(self.retry_after)}
        return out


async def acquire(db: AsyncDatabase, principal: str, tier: str, now: datetime | None = None) -> Decision:
    """One round trip: counts this request in the minute and day windows and adds an in-flight slot
    (with its own expiry, so a crashed process cannot hold a slot for more than five minutes) to the
    caller's document of the day. A refused request gives its slot back (it is still counted: fixed
    windows count attempts)."""
    per_minute, per_day, concurrent = TIERS.get(tier, TIERS["free"])
    now = now or datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    doc_id = f"{principal}:{now:%Y%m%d}"
    slot = uuid.uuid4().hex
    doc = await db[mongo.RATE_LIMITS].find_one_and_update(
        {"_id": doc_id},
        {
            "$inc": {"day": 1, f"m.{minute}": 1},
            "$push": {"inflight": {"id": slot, "exp": now + SLOT_TTL}},
            "$setOnInsert": {"expires_at": midnight + timedelta(days=1)},
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
        projection={"day": 1, f"m.{minute}": 1, "inflight": 1},
    )
    in_minute = int(doc["m"][str(minute)])
    in_day = int(doc["day"])
    live = [s for s in doc.get("inflight", []) if _aware(s["exp"]) > now]
    reset = int(next_minute.timestamp())
    remaining = max(0, per_minute - in_minute)
    refusal: Decision | None = None
    if in_minute > per_minute:
        wait = max(1, int((next_minute - now).total_seconds() + 0.999))
        refusal = Decision(False, per_minute, 0, reset, wait, f"{per_minute} requests per minute")
    elif per_day is not None and in_day > per_day:
        wait = max(1, int((midnight - now).total_seconds() + 0.999))
        refusal = Decision(False, per_minute, remaining, reset, wait, f"{per_day} requests per day")
    elif len(live) > concurrent:
        refusal = Decision(False, per_minute, remaining, reset, 1, f"{concurrent} concurrent requests")
    if refusal is not None:
        await release(db, f"{doc_id}|{slot}")
        return refusal
    if len(doc.get("inflight", [])) > 2 * concurrent + 10:  # drop slots left by crashed processes
        await db[mongo.RATE_LIMITS].update_one({"_id": doc_id}, {"$pull": {"inflight": {"exp": {"$lt": now}}}})
    return Decision(True, per_minute, remaining, reset, slot=f"{doc_id}|{slot}")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def release(db: AsyncDatabase, slot: str) -> None:
    doc_id, _, slot_id = slot.partition("|")
    await db[mongo.RATE_LIMITS].update_one({"_id": doc_id}, {"$pull": {"inflight": {"id": slot_id}}})


def release_soon(db: AsyncDatabase, slot: str, tasks: set[asyncio.Task[None]]) -> None:
    """``release`` in the background, after the response has gone out; ``tasks`` keeps it referenced
    until done (a slot whose release is lost still expires after ``SLOT_TTL``)."""
    task = asyncio.get_running_loop().create_task(release(db, slot))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
