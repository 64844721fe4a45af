"""Canary analyser and orchestrator (consumer group ``canary-analyser``).

Consumes ``predict.served`` and ``predict.feedback``; every event that names an active canary feeds that
canary's :class:`ml.canary.CanaryAggregator` (join by prediction id, labels may come minutes later).
A timer closes the analysis windows (``MODELBUS_CANARY_WINDOW_SECONDS``, or the canary's
``policy.window_seconds``); for each closed window it publishes ``canary.metrics`` and computes the
verdict (:func:`ml.canary.decide` on the cumulative totals), publishing ``canary.recommendations``
whenever the recommendation changes. Both project into the ``canaries`` document.

Automatic mode (``auto: true`` at canary start): on ``proceed``, once the canary has stayed
``monitoring_duration_minutes`` at its current step, traffic goes to the next step (10 → 25 → 50 → 100)
and after 100 % the model is promoted to production; on ``rollback`` the canary is rolled back.

The aggregators live in memory: run one analyser (the ``analyser`` role); a restarted analyser starts
from its committed offsets with empty aggregates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faststream.kafka import KafkaBroker

from consumers.deps import Deps, batch_subscriber, decode_batch
from infra import mongo
from infra.projections import apply_events
from ml.canary import AggregatorConfig, CanaryAggregator, CanaryPolicy, FeedbackEvent, ServedEvent, decide
from ml.canary.analysis import status_metrics
from ml.canary.stats import wilson_interval
from producers.deploy import DeployConflict, Deployer
from schemas import deploy
from schemas.common import utcnow
from schemas.envelope import Envelope

log = logging.getLogger("modelbus.canary_analyser")

ACTOR = "canary-orchestrator"
_POLICY_FIELDS = set(CanaryPolicy.model_fields)
HOLD_SECONDS = 60.0
"""how long events naming a canary whose document is not projected yet wait for it (then they are dropped)"""
HOLD_MAX_EVENTS = 100_000
"""events held per such canary at most"""


@dataclass
class Tracked:
    canary_id: str
    aggregator: CanaryAggregator
    doc: dict[str, Any]
    policy: CanaryPolicy
    recommendation: str | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"served": 0, "feedback": 0})


@dataclass
class Held:
    """Events that name a canary the analyser cannot see yet: the canary's document is projected a few
    milliseconds after ``canary/start`` answers, and traffic may be faster than that."""

    since: float
    events: list[Envelope] = field(default_factory=list)
    dropped: int = 0


def _ci(successes: int, n: int) -> list[float] | None:
    ci = wilson_interval(successes, n)
    return [round(ci[0], 4), round(ci[1], 4)] if ci else None


class CanaryAnalyser:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.tracked: dict[str, Tracked] = {}
        self.ignored: set[str] = set()
        self.held: dict[str, Held] = {}
        self._task: asyncio.Task[None] | None = None
        self.last_tick_ms: float | None = None

    def register(self, broker: KafkaBroker) -> None:
        settings = self.deps.settings
        group = settings.group("canary-analyser")

        @batch_subscriber(
            broker,
            self.deps,
            ["predict.served", "predict.feedback"],
            group=group,
            background=True,
            max_records=5000,
            title="canary-analyser",
            description="Joins served predictions with their labels per canary arm; closes analysis windows.",
        )
        async def on_events(records: Any) -> None:
            for _record, env in await decode_batch(self.deps, records, group):
                await self.add(env)

    async def add(self, env: Envelope) -> None:
        data = env.data
        canary_id = data.get("canary_id")
        if not canary_id or env.type not in (deploy.PREDICTION_SERVED, deploy.PREDICTION_FEEDBACK):
            return
        if canary_id in self.held:  # keep arrival order: held until the canary's document appears
            self._hold(canary_id, env)
            return
        tracked = await self._track(canary_id)
        if tracked is None:
            if canary_id not in self.ignored:  # not projected yet (or never started: dropped after HOLD_SECONDS)
                self._hold(canary_id, env)
            return
        try:
            if env.type == deploy.PREDICTION_SERVED:
                served = deploy.PredictionServed.model_validate(data)
                tracked.aggregator.add_served(
                    ServedEvent(
                        prediction_id=served.prediction_id,
                        arm=served.arm,
                        model_id=served.model_id or "",
                        score=served.score,
                        label=served.label if served.error is None else None,
                        latency_ms=max(served.latency_ms, 0.0),
                        error=served.error,
                        time=served.served_at,
                    )
                )
                tracked.stats["served"] += 1
            else:
                fb = deploy.PredictionFeedback.model_validate(data)
                tracked.aggregator.add_feedback(
                    FeedbackEvent(prediction_id=fb.prediction_id, label=fb.label, time=fb.received_at)
                )
                tracked.stats["feedback"] += 1
        except ValueError as exc:
            log.warning("event not usable for canary analysis", extra={"canary_id": canary_id, "error": str(exc)})

    def _hold(self, canary_id: str, env: Envelope) -> None:
        held = self.held.setdefault(canary_id, Held(since=time.monotonic()))
        if len(held.events) < HOLD_MAX_EVENTS:
            held.events.append(env)
        else:
            held.dropped += 1

    async def _release_held(self) -> None:
        """Feeds held events to canaries whose document has appeared; drops those of canaries that ended or
        never appeared within ``HOLD_SECONDS``."""
        for canary_id, held in list(self.held.items()):
            tracked = await self._track(canary_id)
            waiting = tracked is None and canary_id not in self.ignored
            if waiting and time.monotonic() - held.since < HOLD_SECONDS:
                continue
            del self.held[canary_id]
            if tracked is None:
                log.warning(
                    "dropped events naming an unknown or ended canary",
                    extra={"canary_id": canary_id, "events": len(held.events) + held.dropped},
                )
                continue
            if held.dropped:
                log.warning("canary events dropped while held", extra={"canary_id": canary_id, "events": held.dropped})
            for env in held.events:
                await self.add(env)

    async def _track(self, canary_id: str) -> Tracked | None:
        if canary_id in self.tracked:
            return self.tracked[canary_id]
        if canary_id in self.ignored:
            return None
        doc = await self.deps.db[mongo.CANARIES].find_one({"_id": canary_id})
        if doc is None or doc["status"] != "monitoring":
            if doc is not None:
                self.ignored.add(canary_id)
            return None
        overrides = doc.get("policy") or {}
        settings = self.deps.settings
        policy = CanaryPolicy(
            **{
                "min_requests": settings.canary_min_requests,
                "min_labelled": settings.canary_min_labelled,
                **{k: v for k, v in overrides.items() if k in _POLICY_FIELDS},
            }
        )
        window = float(overrides.get("window_seconds") or settings.canary_window_seconds)
        tracked = Tracked(
            canary_id, CanaryAggregator(AggregatorConfig(window_s=window), canary_id=canary_id), doc, policy
        )
        self.tracked[canary_id] = tracked
        return tracked

    async def start(self) -> None:
        self._task = asyncio.create_task(self._tick_forever(), name="canary-windows")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _tick_forever(self) -> None:
        while True:
            windows = [t.aggregator.config.window_s for t in self.tracked.values()]
            await asyncio.sleep(max(0.05, min([2.5, *windows]) / 5))  # at most 0.5 s after a window ends
            try:
                await self.tick(utcnow())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.exception("canary analysis tick failed")

    async def tick(self, now: datetime) -> None:
        """Closes due windows of every tracked canary, publishes metrics and verdict changes, acts in auto mode."""
        if self.held:
            await self._release_held()
        if not self.tracked:
            return
        t0 = time.perf_counter()
        docs = {d["_id"]: d async for d in self.deps.db[mongo.CANARIES].find({"_id": {"$in": list(self.tracked)}})}
        for canary_id, tracked in list(self.tracked.items()):
            doc = docs.get(canary_id)
            if doc is None or doc["status"] != "monitoring":
                del self.tracked[canary_id]
                self.ignored.add(canary_id)
                continue
            tracked.doc = doc
            reports = tracked.aggregator.close_window(now)
            if not reports:
                continue
            await self._publish(tracked, reports)
        self.last_tick_ms = round((time.perf_counter() - t0) * 1000, 3)

    async def _publish(self, tracked: Tracked, reports: list[Any]) -> None:
        totals = tracked.aggregator.totals()
        base, can = totals["baseline"], totals["canary"]
        summaries = {}
        for arm, arm_totals in totals.items():
            summary = arm_totals.summary()
            summary["precision_ci"] = _ci(arm_totals.tp, arm_totals.tp + arm_totals.fp)
            summary["recall_ci"] = _ci(arm_totals.tp, arm_totals.tp + arm_totals.fn)
            summaries[arm] = summary
        last = reports[-1]
        source = f"modelbus/worker/{self.deps.worker_id}"
        # one event per tick (the windows that closed together): events of one canary never share a
        # timestamp in an order that replay could not reproduce
        payload = deploy.CanaryMetrics(
            canary_id=tracked.canary_id,
            window_start=reports[0].start,
            window_end=last.end,
            window=last.to_dict(),
            windows=[r.to_dict() for r in reports],
            totals=summaries,
            metrics=status_metrics(base, can),
        )
        envs = [Envelope.wrap(deploy.CANARY_METRICS, tracked.canary_id, payload, source=source)]
        await self.deps.publisher.publish("canary.metrics", envs[0], key=tracked.canary_id)
        verdict = decide(base, can, tracked.policy, current_percentage=float(tracked.doc["percentage"]))
        if verdict.recommendation != tracked.recommendation:
            rec = deploy.CanaryRecommendation(
                canary_id=tracked.canary_id,
                recommendation=verdict.recommendation,
                previous=tracked.recommendation,
                reason_en=verdict.reason_en,
                reason_ko=verdict.reason_ko,
                numbers=verdict.numbers,
                window_end=last.end,
            )
            env = Envelope.wrap(deploy.CANARY_RECOMMENDATION, tracked.canary_id, rec, source=source)
            await self.deps.publisher.publish("canary.recommendations", env, key=tracked.canary_id)
            envs.append(env)
            log.info(
                "canary verdict changed",
                extra={"canary_id": tracked.canary_id, "recommendation": verdict.recommendation},
            )
            tracked.recommendation = verdict.recommendation
        await apply_events(self.deps.db, envs)
        if tracked.doc.get("auto"):
            await self._follow(tracked, verdict.recommendation, verdict.reason_en)

    async def _follow(self, tracked: Tracked, recommendation: str, reason: str) -> None:
        """Automatic mode: act on the verdict."""
        doc = tracked.doc
        deployer = Deployer(self.deps.db, self.deps.publisher, actor=ACTOR)
        try:
            if recommendation == "rollback":
                await deployer.canary_rollback(tracked.canary_id, reason=f"automatic: {reason}")
            elif recommendation == "proceed":
                minutes = float(doc.get("monitoring_duration_minutes") or 0)
                if (utcnow() - doc["step_at"]).total_seconds() < minutes * 60:
                    return
                nxt = tracked.policy.next_step(float(doc["percentage"]))
                if nxt is None or float(doc["percentage"]) >= 100:
                    await deployer.production(doc["model_id"], reason=f"automatic: {reason}")
                else:
                    await deployer.increase(tracked.canary_id, nxt)
        except DeployConflict as exc:
            log.warning("automatic canary step refused", extra={"canary_id": tracked.canary_id, "error": exc.message})


def register(broker: KafkaBroker, deps: Deps) -> CanaryAnalyser:
    analyser = CanaryAnalyser(deps)
    analyser.register(broker)
    return analyser
