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
from dataclasses import dataclass
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
                "kind": cmd.kind,
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
    if env.type == jobs.MODEL_STATUS_CHANGED and doc is not None:
        change = jobs.ModelStatusChanged.model_validate(env.data)
        if change.status_version != doc.get("status_version", 1) + 1:
            return None  # compare-and-set: only the change to the next version applies
        entry = {
            "status": change.status,
            "from": change.previous_status,
            "status_version": change.status_version,
            "at": env.time,
            "actor": change.actor,
            "reason": change.reason,
        }
        new = doc | {"status": change.status, "status_version": change.status_version}
        new["history"] = [*doc.get("history", []), entry]
        if change.status in ("deployed", "production"):
            new["deployed_at"] = env.time
        if change.deployment is not None:
            new["deployment"] = change.deployment
        return new
    return None


@dataclass(frozen=True)
class Projection:
    """A read model: the events of ``event_types`` folded by ``reducer`` into ``collection``, one document per
    ``doc_id(event)`` (the event's subject by default)."""

    collection: str
    reducer: Reducer
    event_types: tuple[str, ...]
    doc_id: Callable[[Envelope], str] | None = None


PLATFORM_PROJECTIONS: tuple[Projection, ...] = (
    Projection(mongo.JOBS, reduce_job, (
        jobs.TRAIN_REQUESTED, jobs.JOB_RUNNING, jobs.JOB_PROGRESS, jobs.JOB_COMPLETED, jobs.JOB_FAILED,
        jobs.JOB_CANCEL_REQUESTED, jobs.JOB_CANCELLED,
    )),
    Projection(mongo.MODELS, reduce_model, (jobs.MODEL_REGISTERED, jobs.MODEL_STATUS_CHANGED)),
)

_PROJECTIONS: dict[str, Projection] = {p.collection: p for p in PLATFORM_PROJECTIONS}
_TARGETS: dict[str, list[tuple[str, Reducer]]] = {}


def register(projections: Iterable[Projection]) -> None:
    """Adds the domains' read models (the composition root calls this once per process; adding the same
    projection again changes nothing)."""
    for projection in projections:
        _PROJECTIONS[projection.collection] = projection
    _TARGETS.clear()
    for projection in _PROJECTIONS.values():
        for event_type in projection.event_types:
            _TARGETS.setdefault(event_type, []).append((projection.collection, projection.reducer))


register(())


def collections() -> list[str]:
    """Every projected collection (what replay rebuilds)."""
    return list(_PROJECTIONS)


def projected_types() -> frozenset[str]:
    """Every event type some projection folds (the projector skips the others undecoded)."""
    return frozenset(_TARGETS)


def targets(event_type: str) -> list[tuple[str, Reducer]]:
    """Every (collection, reducer) an event type folds into."""
    return _TARGETS.get(event_type, [])


def _doc_id(collection: str) -> Callable[[Envelope], str]:
    projection = _PROJECTIONS.get(collection)
    return (projection.doc_id if projection else None) or _subject


def _subject(env: Envelope) -> str:
    return env.subject


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


def group_by_document(events: Iterable[Envelope]) -> tuple[dict[str, dict[str, list[Envelope]]], dict[str, Reducer]]:
    """The events of each document of each collection they fold into (in arrival order), and the reducers."""
    grouped: dict[str, dict[str, list[Envelope]]] = defaultdict(lambda: defaultdict(list))
    reducers: dict[str, Reducer] = {}
    for env in events:
        for collection, reducer in targets(env.type):
            reducers[collection] = reducer
            grouped[collection][_doc_id(collection)(env)].append(env)
    return grouped, reducers


def fold_all(events: Iterable[Envelope]) -> dict[str, list[Doc]]:
    """Every projection's documents from ``events`` alone, each folded from all its events at once (what
    ``apply_events`` gives in any batching, starting from empty collections)."""
    grouped, reducers = group_by_document(events)
    out: dict[str, list[Doc]] = {}
    for collection, by_id in grouped.items():
        docs = (fold(None, evs, reducers[collection]) for evs in by_id.values())
        out[collection] = [d for d in docs if d is not None]
    return out


async def apply_events(db: AsyncDatabase, events: Iterable[Envelope]) -> int:
    """Projects a batch: one read and one bulk write per collection. Returns documents written."""
    grouped, reducers = group_by_document(events)
    written = 0
    for collection, by_subject in grouped.items():
        reducer = reducers[collection]
        coll = db[collection]
        pending = dict(by_subject)
        for _ in range(8):  # optimistic concurrency: re-read and re-fold the entities that lost a race
            if not pending:
                break
            current = await mongo.find_by_ids(coll, pending)
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
