"""Read models: pure reducers (document, event) -> document, and an idempotent batch writer.

Every projected document keeps ``_seq`` (the highest ``sequence`` applied), ``_applied``
(how many events changed it) and ``updated_at`` (the latest event time). An event whose
``sequence`` is not above ``_seq`` is older or repeated and is ignored; events without a
sequence are commutative flags (setting them twice changes nothing). So applying the same
events twice, in any batching or interleaving of flags, gives identical documents.
Writes are compare-and-set on ``_applied`` so the API (which applies the events it has just
published, so a client can read its own write) and the projector never overwrite each other."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from infra import mongo
from schemas import jobs
from schemas.envelope import Envelope

log = logging.getLogger("modelbus.projections")

Doc = dict[str, Any]
Reducer = Callable[[Doc | None, Envelope], Doc | None]


def _minutes(start: datetime | None, end: datetime) -> float | None:
    return None if start is None else round((end - start).total_seconds() / 60.0, 2)


def reduce_job(doc: Doc | None, env: Envelope) -> Doc | None:
    data = env.data
    t = env.time
    if env.type == jobs.TRAIN_REQUESTED:
        cmd = jobs.TrainRequested.model_validate(data)
        if doc is None:
            doc = {
                "_id": cmd.job_id,
                "job_id": cmd.job_id,
                "domain": cmd.domain,
                "model_type": cmd.model_type,
                "status": "started",
                "progress": 0.0,
                "model_id": None,
                "metrics": None,
                "result": None,
                "spec": cmd.spec,
                "record_count": cmd.record_count,
                "estimated_duration_minutes": cmd.estimated_duration_minutes,
                "requested_by": cmd.requested_by,
                "submitted_at": cmd.submitted_at,
                "started_at": cmd.submitted_at,
                "completed_at": None,
                "duration_minutes": None,
                "attempts": cmd.attempt,
                "cancel_requested": False,
                "error": None,
                "figures": {},
            }
        else:  # a retry after a lost worker
            doc |= {"status": "started", "attempts": cmd.attempt, "progress": 0.0, "error": data.get("retry_reason")}
        return doc
    if doc is None:  # lifecycle event before the command: wait for the command (archive replays both)
        return None
    if env.type == jobs.JOB_CANCEL_REQUESTED:
        return None if doc["cancel_requested"] else doc | {"cancel_requested": True}
    if doc["status"] in jobs.TERMINAL:
        return None
    if env.type == jobs.JOB_RUNNING:
        return doc | {"status": "running", "attempts": data["attempt"], "worker_id": data["worker_id"]}
    if env.type == jobs.JOB_PROGRESS:
        return doc | {
            "status": "running",
            "progress": round(float(data["progress"]), 1),
            "figures": data.get("figures", {}),
        }
    if env.type == jobs.JOB_COMPLETED:
        return doc | {
            "status": "completed",
            "progress": 100.0,
            "model_id": data["model_id"],
            "metrics": data["metrics"],
            "result": data.get("result", {}),
            "completed_at": t,
            "duration_minutes": _minutes(doc["started_at"], t),
        }
    if env.type in (jobs.JOB_FAILED, jobs.JOB_CANCELLED):
        return doc | {
            "status": "failed" if env.type == jobs.JOB_FAILED else "cancelled",
            "error": data.get("reason"),
            "completed_at": t,
            "duration_minutes": _minutes(doc["started_at"], t),
        }
    return None


def reduce_model(doc: Doc | None, env: Envelope) -> Doc | None:
    if env.type == jobs.MODEL_REGISTERED:
        if doc is not None:
            return None
        reg = jobs.ModelRegistered.model_validate(env.data)
        return {
            "_id": reg.model_id,
            **reg.model_dump(),
            "status": "trained",
            "deployed_at": None,
            "status_version": 1,
            "history": [],
        }
    return None


REDUCERS: dict[str, tuple[str, Reducer]] = {
    jobs.TRAIN_REQUESTED: (mongo.JOBS, reduce_job),
    jobs.JOB_RUNNING: (mongo.JOBS, reduce_job),
    jobs.JOB_PROGRESS: (mongo.JOBS, reduce_job),
    jobs.JOB_COMPLETED: (mongo.JOBS, reduce_job),
    jobs.JOB_FAILED: (mongo.JOBS, reduce_job),
    jobs.JOB_CANCEL_REQUESTED: (mongo.JOBS, reduce_job),
    jobs.JOB_CANCELLED: (mongo.JOBS, reduce_job),
    jobs.MODEL_REGISTERED: (mongo.MODELS, reduce_model),
}


def fold(doc: Doc | None, events: Iterable[Envelope], reducer: Reducer) -> Doc | None:
    """Applies events in sequence order to ``doc``; returns the new document or None if unchanged."""
    changed = False
    for env in sorted(events, key=lambda e: (e.sequence is None, e.sequence or 0)):
        seq = doc.get("_seq", -1) if doc is not None else -1
        if env.sequence is not None and env.sequence <= seq:
            continue
        new = reducer(None if doc is None else dict(doc), env)
        if new is None:
            continue
        new["_seq"] = max(seq, env.sequence) if env.sequence is not None else seq
        new["_applied"] = (doc or {}).get("_applied", 0) + 1
        previous = (doc or {}).get("updated_at")
        new["updated_at"] = env.time if previous is None else max(previous, env.time)
        doc, changed = new, True
    return doc if changed else None


async def apply_events(db: AsyncDatabase, events: Iterable[Envelope], *, suffix: str = "") -> int:
    """Projects a batch: one read and one bulk write per collection. Returns documents written."""
    grouped: dict[str, dict[str, list[Envelope]]] = defaultdict(lambda: defaultdict(list))
    for env in events:
        target = REDUCERS.get(env.type)
        if target is not None:
            grouped[target[0]][env.subject].append(env)
    written = 0
    for collection, by_subject in grouped.items():
        reducer = next(r for c, r in REDUCERS.values() if c == collection)
        coll = db[collection + suffix]
        pending = dict(by_subject)
        for _ in range(8):  # optimistic concurrency: re-read and re-fold the entities that lost a race
            if not pending:
                break
            current = {d["_id"]: d async for d in coll.find({"_id": {"$in": list(pending)}})}
            ops: list[InsertOne | ReplaceOne] = []
            for subject, evs in pending.items():
                old = current.get(subject)
                new = fold(old, evs, reducer)
                if new is None:
                    continue
                if old is None:
                    ops.append(InsertOne(new))
                else:
                    ops.append(ReplaceOne({"_id": subject, "_applied": old.get("_applied")}, new))
            if not ops:  # everything in the batch is already applied
                pending = {}
                break
            lost: set[str] = set()
            try:
                result = await coll.bulk_write(ops, ordered=False)
                written += result.inserted_count + result.modified_count
                if result.matched_count + result.inserted_count < len(ops):
                    lost = await _unmatched(coll, ops)
            except BulkWriteError as exc:
                details = exc.details
                written += details.get("nInserted", 0) + details.get("nModified", 0)
                lost = {ops[e["index"]]._doc["_id"] for e in details.get("writeErrors", [])}  # type: ignore[union-attr]
                lost |= await _unmatched(coll, ops)
            pending = {s: pending[s] for s in lost}
        if pending:
            log.error("projection gave up after retries", extra={"collection": collection, "ids": list(pending)})
    return written


async def _unmatched(coll: Any, ops: list[InsertOne | ReplaceOne]) -> set[str]:
    """Replace operations whose compare-and-set did not match (someone wrote in between)."""
    lost: set[str] = set()
    for op in ops:
        if isinstance(op, ReplaceOne):
            flt = op._filter  # type: ignore[attr-defined]
            if await coll.count_documents(flt, limit=1) == 0:
                doc = await coll.find_one({"_id": flt["_id"]})
                if doc is None or doc != op._doc:  # type: ignore[attr-defined]
                    lost.add(flt["_id"])
    return lost
