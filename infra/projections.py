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
from schemas import deploy, jobs, lotto, rl
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
    if env.type == rl.MODEL_STATUS_CHANGED and doc is not None:
        change = rl.ModelStatusChanged.model_validate(env.data)
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


def reduce_draw(doc: Doc | None, env: Envelope) -> Doc | None:
    """A lotto round is recorded once: the first event for a round wins, later ones change nothing."""
    if env.type != lotto.DRAW_RECORDED or doc is not None:
        return None
    draw = lotto.DrawRecorded.model_validate(env.data)
    return {
        "_id": env.subject,
        "round": draw.round,
        "date": draw.date.isoformat(),
        "numbers": sorted(draw.numbers),
        "bonus": draw.bonus,
        "machine": draw.machine,
        "machine_type": lotto.machine_label(draw.machine),
        "synthetic": draw.synthetic,
        "source": draw.source,
        "import_id": draw.import_id,
        "recorded_at": env.time,
        "event_id": env.id,
    }


def rl_episode_id(env: Envelope) -> str:
    """One document per (job, attempt, episode) in ``rl_episodes``."""
    return f"{env.subject}:{env.data.get('attempt')}:{env.data.get('episode')}"


def reduce_rl_episode(doc: Doc | None, env: Envelope) -> Doc | None:
    if env.type != rl.EPISODE_RECORDED or doc is not None:
        return None
    episode = rl.EpisodeRecorded.model_validate(env.data)
    return {"_id": rl_episode_id(env), **episode.model_dump(), "time": env.time}


def reduce_rl_deployment(doc: Doc | None, env: Envelope) -> Doc | None:
    """The current deployment of an RL agent (one document per model); ``generation`` is the model
    ``status_version`` the deploy moved it to, so outcomes of an older request are ignored."""
    data = env.data
    history = (doc or {}).get("history", [])[-19:]
    if env.type == rl.DEPLOY_REQUESTED:
        cmd = rl.DeployRequested.model_validate(data)
        if doc is not None and doc["generation"] >= cmd.generation:
            return None
        return {
            "_id": cmd.model_id,
            "model_id": cmd.model_id,
            "generation": cmd.generation,
            "status": "deploying",
            **cmd.deployment.model_dump(mode="json"),
            "requested_at": cmd.requested_at,
            "requested_by": cmd.requested_by,
            "deployed_at": None,
            "error": None,
            "detail": {},
            "history": [*history, {"status": "deploying", "generation": cmd.generation, "at": env.time}],
        }
    if doc is None:
        return None
    if env.type == rl.UNDEPLOY_REQUESTED:
        undeploy = rl.UndeployRequested.model_validate(data)
        if undeploy.generation <= doc["generation"]:
            return None
        entry = {"status": "undeploying", "generation": undeploy.generation, "at": env.time}
        return doc | {"generation": undeploy.generation, "status": "undeploying", "history": [*history, entry]}
    if env.type in (rl.DEPLOYED, rl.DEPLOY_FAILED, rl.UNDEPLOYED):
        change = rl.DeploymentChanged.model_validate(data)
        newer = change.generation > doc["generation"]  # only an undeploy (replaced by a newer model) skips ahead
        if change.generation < doc["generation"] or (newer and change.status != "undeployed"):
            return None
        entry = {"status": change.status, "generation": change.generation, "at": env.time, "error": change.error}
        return doc | {
            "generation": change.generation,
            "status": change.status,
            "detail": change.detail,
            "error": change.error,
            "worker_id": change.worker_id,
            "deployed_at": env.time if change.status == "deployed" else doc.get("deployed_at"),
            "history": [*history, entry],
        }
    return None


def reduce_rl_served(doc: Doc | None, env: Envelope) -> Doc | None:
    if env.type != rl.ACT_SERVED or doc is not None:
        return None
    served = rl.ActServed.model_validate(env.data)
    return {"_id": env.subject, **served.model_dump(), "time": env.time}


def reduce_deployment(doc: Doc | None, env: Envelope) -> Doc | None:
    """A family's deployment state (``_id`` = family): the state carried by its latest step."""
    if env.type != deploy.DEPLOY_STEP:
        return None
    step = env.data
    state = step["state"]
    if doc is not None and doc.get("version", 0) >= state["version"]:
        return None
    return {"_id": env.subject, **state, "last_action": step["action"], "last_event_id": env.id, "changed_at": env.time}


def canary_doc_id(env: Envelope) -> str:
    return str(env.data.get("canary_id") or "")


def shadow_doc_id(env: Envelope) -> str:
    """A shadow's deployment steps name it in ``shadow_id``; its metrics and verdicts in ``canary_id``."""
    if env.type == deploy.DEPLOY_STEP:
        return str(env.data.get("shadow_id") or "")
    return str(env.data.get("canary_id") or "")


def _analysis_results(doc: Doc, env: Envelope) -> Doc | None:
    """A canary's or shadow's latest metrics and verdict (newer windows only)."""
    data = env.data
    end = data["window_end"]
    if env.type in (deploy.CANARY_METRICS, deploy.SHADOW_METRICS):
        if doc.get("metrics_window_end") is not None and end <= doc["metrics_window_end"]:
            return None
        keys = (
            "window_start", "window_end", "totals", "metrics", "comparison", "recommendation", "reason_en",
            "reason_ko", "strata",
        )
        return doc | {"metrics": {k: data.get(k) for k in keys}, "metrics_window_end": end}
    if env.type in (deploy.CANARY_RECOMMENDATION, deploy.SHADOW_RECOMMENDATION):
        if doc.get("verdict_window_end") is not None and end <= doc["verdict_window_end"]:
            return None
        verdict = {k: data.get(k) for k in ("recommendation", "previous", "reason_en", "reason_ko", "numbers")}
        return doc | {"verdict": verdict | {"at": env.time}, "verdict_window_end": end}
    return None


def _analysis_doc(kind: str, analysis_id: str, data: dict[str, Any], env: Envelope, **fields: Any) -> Doc:
    return {
        "_id": analysis_id,
        "kind": kind,
        "family": data.get("family"),
        "model_id": data["model_id"],
        "status": "monitoring",
        "policy": data.get("policy") or {},
        "started_at": env.time,
        "started_by": data.get("actor"),
        "ended_at": None,
        "end_action": None,
        "metrics": None,
        "metrics_window_end": None,
        "verdict": None,
        "verdict_window_end": None,
        "last_version": data["state"]["version"],
        **fields,
    }


def reduce_canary(doc: Doc | None, env: Envelope) -> Doc | None:
    """One document per canary: its steps and end from ``deploy.events``, its latest evidence and verdict from
    ``canary.metrics`` / ``canary.recommendations`` (newer windows only)."""
    data = env.data
    if not data.get("canary_id"):
        return None
    if env.type == deploy.DEPLOY_STEP:
        version = data["state"]["version"]
        if data["action"] == "canary_started":
            if doc is not None:
                return None
            canary = data["state"]["canary"] or {}
            return _analysis_doc(
                "canary",
                data["canary_id"],
                data,
                env,
                canary_id=data["canary_id"],
                baseline_model_id=canary.get("baseline_model_id"),
                percentage=data.get("percentage"),
                auto=canary.get("auto", False),
                monitoring_duration_minutes=data.get("monitoring_duration_minutes"),
                step_at=env.time,
                steps=[{"percentage": data.get("percentage"), "at": env.time, "actor": data.get("actor")}],
            )
        if doc is None or version <= doc.get("last_version", 0):
            return None
        new = doc | {"last_version": version}
        if data["action"] == "traffic_increased" and data.get("percentage") is not None:
            new["percentage"] = data["percentage"]
            new["step_at"] = env.time
            new["steps"] = [
                *doc.get("steps", []),
                {"percentage": data["percentage"], "at": env.time, "actor": data.get("actor")},
            ]
        if data.get("canary_status") and data["canary_status"] != "monitoring":
            new |= {"status": data["canary_status"], "ended_at": env.time, "end_action": data["action"]}
            if data["canary_status"] == "promoted":
                new["percentage"] = 100.0
        return new
    if doc is None or env.type not in (deploy.CANARY_METRICS, deploy.CANARY_RECOMMENDATION):
        return None
    return _analysis_results(doc, env)


def reduce_shadow(doc: Doc | None, env: Envelope) -> Doc | None:
    """One document per shadow deployment: started, stopped (or promoted to a canary), its evidence and verdict."""
    data = env.data
    if env.type == deploy.DEPLOY_STEP:
        if not data.get("shadow_id"):
            return None
        version = data["state"]["version"]
        if data["action"] == "shadow_started":
            if doc is not None:
                return None
            shadow = data["state"]["shadow"] or {}
            return _analysis_doc(
                "shadow",
                data["shadow_id"],
                data,
                env,
                shadow_id=data["shadow_id"],
                baseline_model_id=shadow.get("baseline_model_id"),
                sample_percentage=data.get("sample_percentage"),
            )
        if doc is None or version <= doc.get("last_version", 0):
            return None
        new = doc | {"last_version": version}
        if data.get("shadow_status") and data["shadow_status"] != "monitoring":
            new |= {"status": data["shadow_status"], "ended_at": env.time, "end_action": data["action"]}
        return new
    if doc is None or env.type not in (deploy.SHADOW_METRICS, deploy.SHADOW_RECOMMENDATION):
        return None
    return _analysis_results(doc, env)


def reduce_canary_window(doc: Doc | None, env: Envelope) -> Doc | None:
    """One document per metrics event of a canary or shadow: its evidence over time (``_id`` = event id)."""
    if doc is not None or env.type not in (deploy.CANARY_METRICS, deploy.SHADOW_METRICS):
        return None
    data = env.data
    return {
        "_id": env.id,
        "canary_id": data["canary_id"],
        "kind": data.get("kind", "canary"),
        "window_start": data["window_start"],
        "window_end": data["window_end"],
        "comparison": data.get("comparison", []),
        "metrics": data.get("metrics"),
        "recommendation": data.get("recommendation"),
        "arms": {
            arm: {k: figures.get(k) for k in ("requests", "errors", "labelled", "waiting_for_label", "accuracy")}
            for arm, figures in (data.get("totals") or {}).items()
        },
    }


def history_doc_id(env: Envelope) -> str:
    return env.id


def reduce_deploy_history(doc: Doc | None, env: Envelope) -> Doc | None:
    """The audit trail: one immutable document per deployment step (``_id`` = event id)."""
    if env.type != deploy.DEPLOY_STEP or doc is not None:
        return None
    data = env.data
    return {
        "_id": env.id,
        "event_id": env.id,
        "time": env.time,
        "family": data.get("family"),
        "action": data["action"],
        "model_id": data.get("model_id"),
        "actor": data.get("actor"),
        "reason": data.get("reason"),
        "canary_id": data.get("canary_id"),
        "shadow_id": data.get("shadow_id"),
        "percentage": data.get("percentage"),
        "sample_percentage": data.get("sample_percentage"),
        "changes": data.get("changes", []),
        "metrics": data.get("metrics"),
        "state": data["state"],
    }


REDUCERS: dict[str, tuple[str, Reducer]] = {
    jobs.TRAIN_REQUESTED: (mongo.JOBS, reduce_job),
    jobs.JOB_RUNNING: (mongo.JOBS, reduce_job),
    jobs.JOB_PROGRESS: (mongo.JOBS, reduce_job),
    jobs.JOB_COMPLETED: (mongo.JOBS, reduce_job),
    jobs.JOB_FAILED: (mongo.JOBS, reduce_job),
    jobs.JOB_CANCEL_REQUESTED: (mongo.JOBS, reduce_job),
    jobs.JOB_CANCELLED: (mongo.JOBS, reduce_job),
    jobs.MODEL_REGISTERED: (mongo.MODELS, reduce_model),
    rl.MODEL_STATUS_CHANGED: (mongo.MODELS, reduce_model),
    rl.EPISODE_RECORDED: (mongo.RL_EPISODES, reduce_rl_episode),
    rl.DEPLOY_REQUESTED: (mongo.RL_DEPLOYMENTS, reduce_rl_deployment),
    rl.UNDEPLOY_REQUESTED: (mongo.RL_DEPLOYMENTS, reduce_rl_deployment),
    rl.DEPLOYED: (mongo.RL_DEPLOYMENTS, reduce_rl_deployment),
    rl.DEPLOY_FAILED: (mongo.RL_DEPLOYMENTS, reduce_rl_deployment),
    rl.UNDEPLOYED: (mongo.RL_DEPLOYMENTS, reduce_rl_deployment),
    rl.ACT_SERVED: (mongo.RL_SERVED, reduce_rl_served),
    lotto.DRAW_RECORDED: (mongo.LOTTO_DRAWS, reduce_draw),
    deploy.DEPLOY_STEP: (mongo.DEPLOYMENTS, reduce_deployment),
    deploy.CANARY_METRICS: (mongo.CANARIES, reduce_canary),
    deploy.CANARY_RECOMMENDATION: (mongo.CANARIES, reduce_canary),
    deploy.SHADOW_METRICS: (mongo.SHADOWS, reduce_shadow),
    deploy.SHADOW_RECOMMENDATION: (mongo.SHADOWS, reduce_shadow),
}
"""The prediction records (``predict.served`` and ``predict.feedback`` into ``predictions``) are folded by the
canary analyser together with the strata they add up to, in one transaction (``consumers/canary_records.py``);
replay adds them (``infra/replay.py``)."""

EXTRA_REDUCERS: dict[str, list[tuple[str, Reducer]]] = {
    deploy.DEPLOY_STEP: [
        (mongo.CANARIES, reduce_canary),
        (mongo.SHADOWS, reduce_shadow),
        (mongo.DEPLOY_HISTORY, reduce_deploy_history),
    ],
    deploy.CANARY_METRICS: [(mongo.CANARY_WINDOWS, reduce_canary_window)],
    deploy.SHADOW_METRICS: [(mongo.CANARY_WINDOWS, reduce_canary_window)],
}
"""event type -> further projections it folds into (beside its REDUCERS entry)"""

PROJECTED_TYPES: frozenset[str] = frozenset(REDUCERS) | frozenset(EXTRA_REDUCERS)
"""every event type some projection folds (the projector skips the others undecoded)"""


def targets(event_type: str) -> list[tuple[str, Reducer]]:
    """Every (collection, reducer) an event type folds into."""
    first = REDUCERS.get(event_type)
    return ([first] if first else []) + EXTRA_REDUCERS.get(event_type, [])


DOC_ID: dict[str, Callable[[Envelope], str]] = {
    mongo.RL_EPISODES: rl_episode_id,
    mongo.CANARIES: canary_doc_id,
    mongo.SHADOWS: shadow_doc_id,
    mongo.CANARY_WINDOWS: history_doc_id,
    mongo.DEPLOY_HISTORY: history_doc_id,
}
"""collection -> document id of an event, where it is not the event's subject"""


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
            grouped[collection][DOC_ID.get(collection, _subject)(env)].append(env)
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
