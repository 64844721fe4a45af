"""Tiered rate limits shared by every API process (counters in MongoDB): requests per minute,
per day, and requests in flight, exactly the seed's tiers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from infra import mongo
from infra.periodic import Periodic

log = logging.getLogger("modelbus.ratelimit")

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
    doc = await _update_counts(
        db,
        doc_id,
        {
            "$inc": {"day": 1, f"m.{minute}": 1},
            "$push": {"inflight": {"id": slot, "exp": now + SLOT_TTL}},
            "$setOnInsert": {"expires_at": midnight + timedelta(days=1)},
        },
        minute,
    )
    in_minute = int(doc["m"][str(minute)])
    in_day = int(doc["day"])
    # admitted if this slot is among the first ``concurrent`` live ones: the array keeps push order, so
    # the position holds whether the document came back from the update or was read back after racers
    # had pushed theirs too (counting every live slot refused 4 of 5 racing requests, cap 2)
    live = [s["id"] for s in doc.get("inflight", []) if _aware(s["exp"]) > now]
    position = live.index(slot) if slot in live else len(live)
    reset = int(next_minute.timestamp())
    remaining = max(0, per_minute - in_minute)
    refusal: Decision | None = None
    if in_minute > per_minute:
        wait = max(1, int((next_minute - now).total_seconds() + 0.999))
        refusal = Decision(False, per_minute, 0, reset, wait, f"{per_minute} requests per minute")
    elif per_day is not None and in_day > per_day:
        wait = max(1, int((midnight - now).total_seconds() + 0.999))
        refusal = Decision(False, per_minute, remaining, reset, wait, f"{per_day} requests per day")
    elif position >= concurrent:
        refusal = Decision(False, per_minute, remaining, reset, 1, f"{concurrent} concurrent requests")
    if refusal is not None:
        await release(db, f"{doc_id}|{slot}")
        return refusal
    if len(doc.get("inflight", [])) > 2 * concurrent + 10:  # drop slots left by crashed processes
        await db[mongo.RATE_LIMITS].update_one({"_id": doc_id}, {"$pull": {"inflight": {"exp": {"$lt": now}}}})
    return Decision(True, per_minute, remaining, reset, slot=f"{doc_id}|{slot}")


async def _update_counts(db: AsyncDatabase, doc_id: str, update: dict[str, Any], minute: int) -> dict[str, Any]:
    """Applies ``update`` to the caller's document of the day (created by the first request) and returns
    the counts after it. Concurrent first requests race to create the document: MongoDB retries the loser
    itself or answers E11000 (nothing applied: try again); SecantusDB applies the update but returns no
    document (measured: 2 of 5 concurrent upserts), so the counts are read back instead of updating twice."""
    projection = {"day": 1, f"m.{minute}": 1, "inflight": 1}
    coll = db[mongo.RATE_LIMITS]
    for _ in range(3):
        with contextlib.suppress(DuplicateKeyError):
            doc = await coll.find_one_and_update(
                {"_id": doc_id}, update, upsert=True, return_document=ReturnDocument.AFTER, projection=projection
            )
            if doc is None:
                doc = await coll.find_one({"_id": doc_id}, projection)
            if doc is not None:
                return dict(doc)
    raise RuntimeError(f"rate-limit document {doc_id} could not be updated")


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


LEASE_MIN_PER_MINUTE = 500
"""Tiers allowing at least this many requests a minute (enterprise) lease their limits in blocks;
the others are decided exactly, one MongoDB round trip per request."""
UNITS_PER_LEASE_DIVISOR = 50
"""a lease takes per-minute / 50 requests of the minute at once (enterprise: 20)"""
SLOTS_PER_LEASE_DIVISOR = 10
"""and concurrent / 10 in-flight slots (enterprise: 10)"""
IDLE_SLOT_SECONDS = 1.0
"""leased slots that nobody in this process used for this long go back to the shared pool"""


@dataclass
class Lease:
    """What one API process holds of one caller's limits for the current minute."""

    doc_id: str
    minute: int
    granted: int = 0
    used: int = 0
    seen_minute: int = 0
    day_exhausted: bool = False
    minute_exhausted: bool = False
    """the shared minute counter is at the limit: no more leases (and no more increments) this minute"""
    slots: dict[str, float] = field(default_factory=dict)
    """slot id -> monotonic time it was leased (renewed before ``SLOT_TTL`` runs out)"""
    inflight: int = 0
    last_release: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LeasedLimits:
    """The high tiers' limits, leased from the shared MongoDB document in blocks, so most requests are
    decided in this process's memory. It never admits more than the limits: a request is admitted only
    on a unit that the shared minute (and day) counter already counts and on a slot that is already in
    the shared in-flight list. It may refuse a little early: units a process leased and did not use by
    the end of the minute, and slots it holds idle (at most one block each, for at most
    ``IDLE_SLOT_SECONDS``), are not available to the caller's requests on other API processes."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.process = uuid.uuid4().hex[:12]
        self.leases: dict[str, Lease] = {}

    async def acquire(self, principal: str, tier: str, now: datetime | None = None) -> Decision:
        per_minute, per_day, concurrent = TIERS[tier]
        now = now or datetime.now(UTC)
        minute = now.hour * 60 + now.minute
        next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        doc_id = f"{principal}:{now:%Y%m%d}"
        lease = self.leases.get(principal)
        if lease is None or lease.doc_id != doc_id:
            lease = self.leases[principal] = Lease(doc_id, minute)
        async with lease.lock:
            if lease.minute != minute:
                lease.minute, lease.granted, lease.used, lease.seen_minute = minute, 0, 0, 0
                lease.minute_exhausted = False
            need_units = lease.used >= lease.granted and not (lease.day_exhausted or lease.minute_exhausted)
            need_slots = lease.inflight >= len(lease.slots)
            if need_units or need_slots:
                await self._lease(lease, now, midnight, per_minute, per_day, concurrent, need_units, need_slots)
            reset = int(next_minute.timestamp())
            remaining = max(0, per_minute - lease.seen_minute + (lease.granted - lease.used))
            if lease.used >= lease.granted:
                if lease.day_exhausted:
                    wait = max(1, int((midnight - now).total_seconds() + 0.999))
                    return Decision(False, per_minute, remaining, reset, wait, f"{per_day} requests per day")
                wait = max(1, int((next_minute - now).total_seconds() + 0.999))
                return Decision(False, per_minute, 0, reset, wait, f"{per_minute} requests per minute")
            if lease.inflight >= len(lease.slots):
                return Decision(False, per_minute, remaining, reset, 1, f"{concurrent} concurrent requests")
            lease.used += 1
            lease.inflight += 1
            return Decision(True, per_minute, max(0, remaining - 1), reset, slot=f"lease|{principal}")

    async def _lease(
        self,
        lease: Lease,
        now: datetime,
        midnight: datetime,
        per_minute: int,
        per_day: int | None,
        concurrent: int,
        need_units: bool,
        need_slots: bool,
    ) -> None:
        """One round trip: count a block of units in the shared counters and/or add a block of slots to the
        shared in-flight list; then keep only what fits under the limits (handing back the rest)."""
        units = max(1, per_minute // UNITS_PER_LEASE_DIVISOR) if need_units else 0
        new_slots = (
            [f"{self.process}-{uuid.uuid4().hex[:8]}" for _ in range(max(1, concurrent // SLOTS_PER_LEASE_DIVISOR))]
            if need_slots
            else []
        )
        update: dict[str, Any] = {"$setOnInsert": {"expires_at": midnight + timedelta(days=1)}}
        if units:
            update["$inc"] = {"day": units, f"m.{lease.minute}": units}
        if new_slots:
            update["$push"] = {"inflight": {"$each": [{"id": s, "exp": now + SLOT_TTL} for s in new_slots]}}
        doc = await _update_counts(self.db, lease.doc_id, update, lease.minute)
        if units:
            total = int(doc.get("m", {}).get(str(lease.minute), 0))
            grant = max(0, min(units, per_minute - (total - units)))
            if per_day is not None:
                day_left = per_day - (int(doc.get("day", 0)) - units)
                if day_left < grant:
                    grant, lease.day_exhausted = max(0, day_left), True
            lease.granted += grant
            lease.seen_minute = total
            lease.minute_exhausted = total >= per_minute
        if new_slots:
            # keep the new slots among the first ``concurrent`` live ones (push order: right whether the
            # document came back from the update or was read back after racers had pushed theirs)
            live = [s["id"] for s in doc.get("inflight", []) if _aware(s["exp"]) > now]
            first = set(live[:concurrent])
            back = [s for s in new_slots if s not in first]
            if back:
                await self.give_back(lease.doc_id, back)
                new_slots = [s for s in new_slots if s in first]
            clock = time.monotonic()
            lease.slots.update({s: clock for s in new_slots})

    def release(self, principal: str) -> None:
        lease = self.leases.get(principal)
        if lease is not None and lease.inflight > 0:
            lease.inflight -= 1
            lease.last_release = time.monotonic()

    async def give_back(self, doc_id: str, slot_ids: list[str]) -> None:
        await self.db[mongo.RATE_LIMITS].update_one({"_id": doc_id}, {"$pull": {"inflight": {"id": {"$in": slot_ids}}}})

    async def tidy(self) -> None:
        """Hands idle slots back and renews slots held for half their TTL (called every second)."""
        clock = time.monotonic()
        now = datetime.now(UTC)
        for lease in list(self.leases.values()):
            async with lease.lock:
                idle = len(lease.slots) - lease.inflight
                if idle > 0 and clock - lease.last_release >= IDLE_SLOT_SECONDS:
                    back = sorted(lease.slots, key=lease.slots.__getitem__)[:idle]
                    await self.give_back(lease.doc_id, back)
                    for s in back:
                        del lease.slots[s]
                old = [s for s, t in lease.slots.items() if clock - t > SLOT_TTL.total_seconds() / 2]
                if old:  # push the replacements first: the caller never holds fewer slots than it uses
                    fresh = [f"{self.process}-{uuid.uuid4().hex[:8]}" for _ in old]
                    await self.db[mongo.RATE_LIMITS].update_one(
                        {"_id": lease.doc_id},
                        {"$push": {"inflight": {"$each": [{"id": s, "exp": now + SLOT_TTL} for s in fresh]}}},
                    )
                    await self.give_back(lease.doc_id, old)
                    for s in old:
                        del lease.slots[s]
                    lease.slots.update({s: clock for s in fresh})


class RateLimiter:
    """The API process's limiter (in ``app.state``): exact for free and premium, leased for enterprise."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.leased = LeasedLimits(db)
        self.background: set[asyncio.Task[None]] = set()
        self._tidy = Periodic("rate-limit-leases", self.leased.tidy, IDLE_SLOT_SECONDS, log=log)

    async def acquire(self, principal: str, tier: str) -> Decision:
        if TIERS.get(tier, TIERS["free"])[0] >= LEASE_MIN_PER_MINUTE:
            return await self.leased.acquire(principal, tier)
        return await acquire(self.db, principal, tier)

    def release(self, decision: Decision) -> None:
        """After the response: a leased slot is freed in memory; an exact one in the background."""
        if decision.slot is None:
            return
        if decision.slot.startswith("lease|"):
            self.leased.release(decision.slot.removeprefix("lease|"))
        else:
            release_soon(self.db, decision.slot, self.background)

    def start(self) -> None:
        self._tidy.start()  # slots expire by themselves if tidying keeps failing

    async def stop(self) -> None:
        await self._tidy.stop()
        for lease in self.leased.leases.values():  # hand every held slot back
            if lease.slots:
                await self.leased.give_back(lease.doc_id, list(lease.slots))
                lease.slots.clear()
