"""Canary and shadow analyser and orchestrator (consumer group ``canary-analyser``).

Consumes ``predict.served`` and ``predict.feedback`` and folds them into the prediction records and the
strata of every canary and shadow, in one MongoDB transaction per batch
(:class:`consumers.canary_records.RecordWriter`); the Kafka offsets are committed after it, so a crash
redelivers the batch and the records make it count once. Nothing the verdict needs lives only here: the
in-memory :class:`ml.canary.evidence.Evidence` of each running canary or shadow is loaded from the stored
strata when the analyser starts (or first meets it) and then follows the deltas it writes itself.

A timer closes the analysis windows (``MODELBUS_CANARY_WINDOW_SECONDS``, or the policy's
``window_seconds``). After each window whose evidence moved, it publishes ``canary.metrics`` (the evidence
and each compared metric's anytime-valid interval) and computes the verdict
(:func:`ml.canary.decide`), publishing ``canary.recommendations`` whenever it changes; shadows publish
``modelbus.shadow.*`` on the same topics, with ``promote_to_canary`` / ``hold`` / ``reject``. Labels keep
coming after a canary ends (for ``label_horizon_days``): its evidence is still updated and published.

Automatic mode (``auto: true`` at canary start): on ``proceed``, once the canary has stayed
``monitoring_duration_minutes`` at its current step, traffic goes to the next step (10 → 25 → 50 → 100)
and after 100 % the model is promoted to production; on ``rollback`` the canary is rolled back.

Run one analyser per stack (the ``analyser`` role): it is the one writer of the records and strata.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pymongo.errors import ConnectionFailure, OperationFailure

from consumers.canary.records import RECORD_TYPES, RecordWriter, horizon_end
from consumers.deps import Deps, batch_subscriber, decode_batch
from consumers.serving import ServingService
from infra import mongo
from infra.periodic import Periodic
from infra.projections import apply_events
from ml.canary import CanaryPolicy, Evidence, comparison, decide
from ml.canary.evidence import UNMATCHED, HorizonEnd, parse_stratum_id
from producers.canary.deploy import DeployConflict, Deployer
from schemas import deploy
from schemas.common import utcnow
from schemas.envelope import Envelope

log = logging.getLogger("modelbus.canary_analyser")

ACTOR = "canary-orchestrator"
_POLICY_FIELDS = set(CanaryPolicy.model_fields)
SHADOW_WORDS = {"proceed": "promote_to_canary", "rollback": "reject", "hold": "hold"}
IDLE_AFTER_ENDED_S = 300.0
"""an ended canary or shadow is forgotten from memory after this long without a new label (and reloaded from
its stored strata when one comes)"""
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
"""back-off while MongoDB is unreachable or a dead writer's transaction holds records (its lifetime: 60 s)"""
HORIZON_RECHECK_S = 10.0


@dataclass
class Analysis:
    """A canary or shadow the analyser follows."""

    analysis_id: str
    kind: str
    doc: dict[str, Any]
    policy: CanaryPolicy
    window_s: float
    evidence: Evidence
    published_version: int = -1
    window_index: int | None = None
    window_start: datetime | None = None
    recommendation: str | None = None
    touched: float = 0.0

    @property
    def running(self) -> bool:
        return self.doc.get("status") == "monitoring"


def policy_of(doc: dict[str, Any]) -> CanaryPolicy:
    """The verdict policy stored with the canary or shadow (resolved at its start; class defaults otherwise)."""
    stored = doc.get("policy") or {}
    return CanaryPolicy(**{k: v for k, v in stored.items() if k in _POLICY_FIELDS})


class CanaryAnalyser:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.writer = RecordWriter(deps.db)
        self.analyses: dict[str, Analysis] = {}
        self.horizons: dict[str, tuple[datetime | None, float]] = {}
        """analysis id -> (when it stops taking labels or None while it runs, when that was read)"""
        self.unknown: set[str] = set()
        """analysis ids met in deltas that are not loaded yet"""
        self.lock = asyncio.Lock()
        self._ticker = Periodic("canary-windows", lambda: self.tick(utcnow()), self._tick_interval, log=log)
        self.last_tick_ms: float | None = None

    # -- consuming ---------------------------------------------------------------------------------------

    def register(self, broker: KafkaBroker) -> None:
        group = self.deps.settings.group("canary-analyser")

        @batch_subscriber(
            broker,
            self.deps,
            ["predict.served", "predict.feedback"],
            group=group,
            background=True,
            max_records=5000,
            ack_policy=AckPolicy.ACK,  # offsets are committed after the records and strata are
            title="canary-analyser",
            description="Folds served predictions and labels into the prediction records and the strata of every "
            "canary and shadow (one transaction per batch); closes analysis windows and publishes verdicts.",
        )
        async def on_events(records: Any) -> None:
            envs = [env for _, env in await decode_batch(self.deps, records, group, wanted=RECORD_TYPES)]
            await self.fold(envs)

    async def fold(self, envs: list[Envelope]) -> None:
        """Applies a batch to MongoDB (retrying while the database is unreachable), then to the evidence."""
        if not envs:
            return
        for attempt in range(len(RETRY_SECONDS) + 1):
            try:
                async with self.lock:
                    deltas = await self.writer.apply(envs, self.resolve)
                    for sid, counts in deltas.items():
                        if sid == UNMATCHED:
                            continue
                        analysis_id = parse_stratum_id(sid)[0]
                        analysis = self.analyses.get(analysis_id)
                        if analysis is not None:
                            analysis.evidence.apply(sid, counts)
                            analysis.touched = time.monotonic()
                        else:
                            self.unknown.add(analysis_id)
                return
            except (ConnectionFailure, OperationFailure) as exc:
                if attempt == len(RETRY_SECONDS):
                    raise
                log.warning("prediction records not written, retrying", extra={"error": str(exc)})
                await asyncio.sleep(RETRY_SECONDS[attempt])

    async def resolve(self, names: set[str]) -> HorizonEnd:
        """When each named canary or shadow stops taking labels, from its document (an ended one's answer never
        changes; a running one's is read again after ``HORIZON_RECHECK_S``)."""
        now = time.monotonic()
        stale = [n for n in names if n not in self.horizons or (
            self.horizons[n][0] is None and now - self.horizons[n][1] > HORIZON_RECHECK_S)]
        if stale:
            for name in (mongo.CANARIES, mongo.SHADOWS):
                async for doc in self.deps.db[name].find({"_id": {"$in": stale}}, {"ended_at": 1, "policy": 1}):
                    self.horizons[doc["_id"]] = (horizon_end(doc), now)
        return lambda analysis_id: (self.horizons.get(analysis_id) or (None, 0.0))[0]

    # -- following canaries and shadows ----------------------------------------------------------------

    async def _load(self, doc: dict[str, Any]) -> Analysis:
        """An analysis with its evidence from the stored strata (called under the lock)."""
        analysis_id = doc["_id"]
        strata = [d async for d in self.deps.db[mongo.CANARY_STRATA].find({"analysis_id": analysis_id})]
        overrides = doc.get("policy") or {}
        window = float(overrides.get("window_seconds") or self.deps.settings.canary_window_seconds)
        return Analysis(
            analysis_id=analysis_id,
            kind=doc.get("kind", "canary"),
            doc=doc,
            policy=policy_of(doc),
            window_s=window,
            evidence=(evidence := Evidence.from_docs(analysis_id, strata)),
            published_version=0 if evidence.version == 0 else -1,
            touched=time.monotonic(),
            recommendation=(doc.get("verdict") or {}).get("recommendation"),
        )

    async def refresh(self, *, everything: bool = False) -> None:
        """Re-reads the canaries and shadows followed (and, with ``everything``, finds every running one): takes
        up those that got their first evidence, lets go of the ended ones that went quiet."""
        ids = list(self.analyses) + list(self.unknown)
        if not ids and not everything:
            return  # idle: no database round trip
        query: dict[str, Any] = {"_id": {"$in": ids}}
        if everything:
            query = {"$or": [query, {"status": "monitoring"}]}
        db = self.deps.db
        docs = [d for name in (mongo.CANARIES, mongo.SHADOWS) async for d in db[name].find(query)]
        now = time.monotonic()
        new = []
        for doc in docs:
            self.horizons[doc["_id"]] = (horizon_end(doc), now)
            analysis = self.analyses.get(doc["_id"])
            if analysis is None:
                new.append(doc)
            else:
                analysis.doc = doc
        if new:  # loading evidence must not interleave with a batch's deltas: under the lock
            async with self.lock:
                for doc in new:
                    if doc["_id"] not in self.analyses:
                        self.analyses[doc["_id"]] = await self._load(doc)
        self.unknown -= set(ids)
        for analysis_id, analysis in list(self.analyses.items()):
            quiet = now - analysis.touched > IDLE_AFTER_ENDED_S
            if not analysis.running and quiet and analysis.published_version == analysis.evidence.version:
                del self.analyses[analysis_id]

    async def start(self) -> None:
        await self.writer.start()
        await self.refresh(everything=True)  # the running canaries and shadows, with their stored evidence
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
        await self.writer.stop()

    def _tick_interval(self) -> float:
        windows = [a.window_s for a in self.analyses.values()]
        return max(0.05, min([2.5, *windows]) / 5)  # at most 0.5 s after a window ends

    async def tick(self, now: datetime) -> None:
        """Closes due windows: publishes the evidence of every canary/shadow whose evidence moved, and the
        verdict of the running ones when it changes; acts in automatic mode."""
        t0 = time.perf_counter()
        await self.refresh()
        for analysis in list(self.analyses.values()):
            index = int(now.timestamp() // analysis.window_s)
            if analysis.window_index is None:  # first seen: its first window closes at the next boundary
                analysis.window_index, analysis.window_start = index, now
                continue
            if index == analysis.window_index:
                continue
            analysis.window_index = index
            if analysis.evidence.version != analysis.published_version:
                await self._publish(analysis, now)
        self.last_tick_ms = round((time.perf_counter() - t0) * 1000, 3)

    async def _publish(self, analysis: Analysis, now: datetime) -> None:
        doc, kind = analysis.doc, analysis.kind
        challenger = "s" if kind == "shadow" else "c"
        current = float(doc["percentage"]) if kind == "canary" and doc.get("percentage") is not None else None
        verdict = decide(
            analysis.evidence,
            analysis.policy,
            current_percentage=current,
            now=now,
            challenger=challenger,
            model_ids=(doc.get("baseline_model_id"), doc.get("model_id")),
        )
        recommendation = SHADOW_WORDS[verdict.recommendation] if kind == "shadow" else verdict.recommendation
        numbers = verdict.numbers
        source = f"modelbus/worker/{self.deps.worker_id}"
        start = analysis.window_start or now
        metrics = deploy.CanaryMetrics(
            canary_id=analysis.analysis_id,
            kind=kind,  # type: ignore[arg-type]
            window_start=start,
            window_end=now,
            totals={"baseline": numbers["baseline"], "canary": numbers["canary"]},
            metrics=numbers["metrics"],
            comparison=comparison(numbers),
            recommendation=recommendation if analysis.running else None,
            reason_en=verdict.reason_en if analysis.running else None,
            reason_ko=verdict.reason_ko if analysis.running else None,
            strata=numbers["strata"],
        )
        metric_type = deploy.SHADOW_METRICS if kind == "shadow" else deploy.CANARY_METRICS
        envs = [Envelope.wrap(metric_type, analysis.analysis_id, metrics, source=source)]
        await self.deps.publisher.publish("canary.metrics", envs[0], key=analysis.analysis_id)
        analysis.published_version = analysis.evidence.version
        analysis.window_start = now
        if analysis.running and recommendation != analysis.recommendation:
            rec = deploy.CanaryRecommendation(
                canary_id=analysis.analysis_id,
                kind=kind,  # type: ignore[arg-type]
                recommendation=recommendation,  # type: ignore[arg-type]
                previous=analysis.recommendation,
                reason_en=verdict.reason_en,
                reason_ko=verdict.reason_ko,
                numbers=numbers,
                window_end=now,
            )
            rec_type = deploy.SHADOW_RECOMMENDATION if kind == "shadow" else deploy.CANARY_RECOMMENDATION
            env = Envelope.wrap(rec_type, analysis.analysis_id, rec, source=source)
            await self.deps.publisher.publish("canary.recommendations", env, key=analysis.analysis_id)
            envs.append(env)
            log.info(
                "verdict changed",
                extra={"canary_id": analysis.analysis_id, "kind": kind, "recommendation": recommendation},
            )
            analysis.recommendation = recommendation
        await apply_events(self.deps.db, envs)
        if kind == "canary" and analysis.running and doc.get("auto"):
            await self._follow(analysis, verdict.recommendation, verdict.reason_en)

    async def _follow(self, analysis: Analysis, recommendation: str, reason: str) -> None:
        """Automatic mode: act on the verdict."""
        doc = analysis.doc
        deployer = Deployer(self.deps.db, self.deps.publisher, actor=ACTOR)
        try:
            if recommendation == "rollback":
                await deployer.canary_rollback(analysis.analysis_id, reason=f"automatic: {reason}")
            elif recommendation == "proceed":
                minutes = float(doc.get("monitoring_duration_minutes") or 0)
                if (utcnow() - doc["step_at"]).total_seconds() < minutes * 60:
                    return
                nxt = analysis.policy.next_step(float(doc["percentage"]))
                if nxt is None or float(doc["percentage"]) >= 100:
                    await deployer.production(doc["model_id"], reason=f"automatic: {reason}")
                else:
                    await deployer.increase(analysis.analysis_id, nxt)
        except DeployConflict as exc:
            log.warning(
                "automatic canary step refused", extra={"canary_id": analysis.analysis_id, "error": exc.message}
            )


def register(broker: KafkaBroker, deps: Deps, serving: ServingService | None = None) -> CanaryAnalyser:
    analyser = CanaryAnalyser(deps)
    analyser.register(broker)
    return analyser
