"""The durable join of predictions and labels, and the strata of every canary and shadow, written together.

``predict.served`` and ``predict.feedback`` fold into one ``predictions`` record per prediction id
(:mod:`ml.canary.evidence`: what was served, what a shadow would have answered, the label whenever it
arrives). Whenever a record changes, what it adds to the strata of its canary or shadow changes by
``contributions(new) - contributions(old)``; :func:`apply_records` writes the records and those deltas
(``$inc`` on ``canary_strata``) in **one MongoDB transaction** and returns the deltas. So:

* a redelivered event changes no record and adds nothing: exactly once over Kafka's at-least-once;
* a crash (``kill -9``) before the commit leaves nothing half-written: the batch is redelivered (the
  analyser commits its Kafka offsets after the transaction) and applied once;
* nothing is kept in memory: a label that comes 30 days later finds its record in MongoDB, and a label
  that comes before its prediction waits in its record;
* a restart of the whole embedded stack (whose broker loses its topics) loses nothing that was applied.

:func:`derive_strata` computes the same strata from records alone: replay folds the records from the
archive and derives the strata from them, and must find the stored ones identical.

MongoDB needs to be a replica set (or SecantusDB, the embedded default) for transactions; on a standalone
server the two writes are made one after the other (records first: a crash between them can lose a
batch's counts but never count twice), with a warning at start.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from infra import mongo
from infra.projections import Doc, fold
from ml.canary.evidence import (
    UNMATCHED,
    Counts,
    HorizonEnd,
    contributions,
    delta,
    flatten,
    fold_feedback,
    fold_served,
    merge_into,
    parse_stratum_id,
    strata_docs,
)
from schemas import deploy
from schemas.common import parse_utc, utcnow
from schemas.envelope import Envelope

log = logging.getLogger("modelbus.canary_records")

RECORD_TYPES = frozenset({deploy.PREDICTION_SERVED, deploy.PREDICTION_FEEDBACK})
DEFAULT_HORIZON_DAYS = 30.0
TRANSACTION_ATTEMPTS = 8
WRITER_LEASE = "canary-records-writer"
"""the ``leases`` document holding the session id of the running record writer"""


def reduce_prediction(doc: Doc | None, env: Envelope) -> Doc | None:
    """A prediction record from a served prediction (either arm, or a shadow's) or a label."""
    data = env.data
    if env.type == deploy.PREDICTION_SERVED:
        new = fold_served(doc, data, parse_utc(data.get("served_at")) or env.time)
    elif env.type == deploy.PREDICTION_FEEDBACK:
        new = fold_feedback(doc, int(data["label"]), parse_utc(data.get("received_at")) or env.time)
    else:
        return None
    if new is not None:
        new["_id"] = env.subject
    return new


def horizon_end(doc: Mapping[str, Any]) -> datetime | None:
    """When a canary or shadow stops taking labels: ``label_horizon_days`` after it ended (``None``: running)."""
    ended = doc.get("ended_at")
    if ended is None:
        return None
    days = float((doc.get("policy") or {}).get("label_horizon_days") or DEFAULT_HORIZON_DAYS)
    return ended + timedelta(days=days)


def horizons(analyses: Iterable[Mapping[str, Any]]) -> HorizonEnd:
    ends = {doc["_id"]: horizon_end(doc) for doc in analyses}
    return lambda analysis_id: ends.get(analysis_id)


def fold_records(events: Iterable[Envelope]) -> list[Doc]:
    """Every prediction record from its events alone (what the analyser's batches give, in any batching)."""
    grouped: dict[str, list[Envelope]] = defaultdict(list)
    for env in events:
        if env.type in RECORD_TYPES:
            grouped[env.subject].append(env)
    docs = (fold(None, evs, reduce_prediction) for evs in grouped.values())
    return [doc for doc in docs if doc is not None]


def derive_strata(records: Iterable[Mapping[str, Any]], horizon: HorizonEnd) -> list[Doc]:
    """The strata documents the records add up to (what the analyser's deltas must have built)."""
    total: dict[str, Counts] = {}
    for record in records:
        merge_into(total, contributions(record, horizon))
    return strata_docs(total)


def canonical_strata(docs: Iterable[Mapping[str, Any]]) -> list[Doc]:
    """Stored strata in the form :func:`derive_strata` gives (counters that went back to zero dropped)."""
    return strata_docs({doc["_id"]: flatten(doc.get("counts") or {}) for doc in docs})


def _strata_update(sid: str, counts: Counts) -> UpdateOne:
    update: dict[str, Any] = {"$inc": {f"counts.{key}": value for key, value in counts.items()}}
    if sid != UNMATCHED:
        analysis_id, step, block = parse_stratum_id(sid)
        update["$setOnInsert"] = {"analysis_id": analysis_id, "step": step, "block": block}
    return UpdateOne({"_id": sid}, update, upsert=True)


Resolver = Callable[[set[str]], Awaitable[HorizonEnd]]
"""the analyses named by a batch -> when each stops taking labels"""


def _named(doc: Mapping[str, Any] | None, events: Iterable[Envelope]) -> set[str]:
    """The canaries and shadows a record and its new events name."""
    names = set()
    for data in [doc or {}, (doc or {}).get("shadow") or {}, *(env.data for env in events)]:
        for key in ("canary_id", "shadow_id"):
            if data.get(key):
                names.add(str(data[key]))
    return names


class LostRace(Exception):
    """A record changed between the read and the write: the batch is applied again."""


class RecordWriter:
    """Folds batches of served/feedback events into the records and the strata (one writer per stack)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.transactions = True
        self.session: Any = None

    async def start(self) -> None:
        """Ends the session of a predecessor that was killed (``kill -9``) inside a transaction: MongoDB keeps
        such a transaction, and the locks on its records, until its lifetime (60 s by default) runs out, and
        every batch touching those records would meet a write conflict until then. Then opens this writer's
        own session and records its id for the next one."""
        leases = self.db[mongo.LEASES]
        previous = await leases.find_one({"_id": WRITER_LEASE})
        if previous and previous.get("lsid"):
            try:
                await self.db.client.admin.command({"killSessions": [previous["lsid"]]})
            except OperationFailure as exc:  # not allowed or not supported: conflicts resolve by waiting
                log.warning("could not end the previous writer's session", extra={"error": str(exc)})
        self.session = self.db.client.start_session()
        await leases.replace_one(
            {"_id": WRITER_LEASE}, {"lsid": self.session.session_id, "started_at": utcnow()}, upsert=True
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.end_session()
            self.session = None

    async def apply(self, events: Iterable[Envelope], horizon: Resolver) -> dict[str, Counts]:
        """Applies the batch exactly once; returns the strata deltas it made (stratum id -> counters)."""
        grouped: dict[str, list[Envelope]] = defaultdict(list)
        for env in events:
            if env.type in RECORD_TYPES:
                grouped[env.subject].append(env)
        if not grouped:
            return {}
        conflict: OperationFailure | None = None
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                if self.transactions:
                    return await self._in_transaction(grouped, horizon)
                return await self._apply(grouped, horizon, None)
            except (LostRace, DuplicateKeyError):
                pass  # a record changed or appeared since it was read: read them all again
            except BulkWriteError as exc:  # (an OperationFailure: caught first)
                if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                    conflict = exc
            except OperationFailure as exc:
                if self.transactions and (exc.code == 20 or "Transaction numbers" in str(exc)):
                    log.warning("MongoDB has no transactions (not a replica set): records and strata are written "
                                "one after the other; a crash between them can lose a batch's counts")
                    self.transactions = False
                    continue
                if not (exc.has_error_label("TransientTransactionError") or exc.code == 112):  # WriteConflict
                    raise
                conflict = exc
            log.info("prediction records changed during the batch, applying it again", extra={"attempt": attempt})
        if conflict is not None:
            raise conflict  # the caller retries with back-off (a dead writer's transaction may hold the records)
        raise RuntimeError(f"prediction records: gave up after {TRANSACTION_ATTEMPTS} attempts")

    async def _in_transaction(self, grouped: dict[str, list[Envelope]], horizon: Resolver) -> dict[str, Counts]:
        """In this writer's session (a session of the moment before ``start`` or after ``stop``)."""
        async with contextlib.AsyncExitStack() as stack:
            session = self.session or await stack.enter_async_context(self.db.client.start_session())
            async with await session.start_transaction():
                return await self._apply(grouped, horizon, session)

    async def _apply(self, grouped: dict[str, list[Envelope]], resolve: Resolver, session: Any) -> dict[str, Counts]:
        """Reads the batch's records, folds its events into them, writes the records and the strata deltas."""
        records = self.db[mongo.PREDICTIONS]
        total: dict[str, Counts] = {}
        current = await mongo.find_by_ids(records, grouped, session=session)
        names: set[str] = set()
        for pid, evs in grouped.items():
            names |= _named(current.get(pid), evs)
        horizon = await resolve(names)
        ops: list[InsertOne | ReplaceOne] = []
        replaced = 0
        for pid, evs in grouped.items():
            old = current.get(pid)
            new = fold(old, evs, reduce_prediction)
            if new is None:
                continue
            if old is None:
                ops.append(InsertOne(new))
            else:
                ops.append(ReplaceOne({"_id": pid, "_applied": old.get("_applied")}, new))
                replaced += 1
            merge_into(total, delta(old, new, horizon))
        if ops:
            result = await records.bulk_write(ops, ordered=False, session=session)
            if result.matched_count < replaced:
                raise LostRace()
        if total:
            updates = [_strata_update(sid, counts) for sid, counts in total.items()]
            await self.db[mongo.CANARY_STRATA].bulk_write(updates, ordered=False, session=session)
        return total
