"""Tabular predictions in the prediction workers (request kind ``tabular.predict``).

The worker keeps the production model, the canary model and the previous production model (for an
instant emergency rollback) in memory, loaded from GridFS with their sha256 checked. It re-reads the
``deployments`` projection every ``deploy_refresh_ms`` (200 ms by default), so a rollback or a traffic
change is served within that delay. Canary traffic is routed with ``ml.canary.choose_arm``: a sticky hash
of the record's ``routing_key`` (else its prediction id), salted with the canary id, below the current
percentage goes to the canary.

Per prediction: one ``PredictionServed`` event on ``predict.served`` (key = prediction id), published right
after the reply (a batch's events are built in one go, ``Envelope.wrap_many``), carrying the canary's
traffic share at that moment. The canary analyser folds those events, in batches, into ``predictions`` (what
feedback is checked against); ``POST /v1/ml/feedback`` waits up to a short grace for an id it does not know yet,
so feedback sent the instant a reply arrives still finds its prediction.

**Shadow.** While a shadow deployment runs, the requests production answers are also scored by the shadow
model when the request's sticky hash (salted with the shadow id) falls in its ``sample_percentage``. That
happens after the reply is on its way (the caller's answer is exactly what it would be without the shadow)
and gives a second ``PredictionServed`` with arm ``shadow`` and the same prediction id, so a label joins both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from faststream.kafka import KafkaBroker

from consumers.deps import Deps
from consumers.serving import Alongside, ServingService
from infra import artifacts, mongo
from infra.periodic import Periodic
from ml.canary.routing import choose_arm
from ml.tabular import scoring
from producers.publisher import envelope_headers, log_failures
from schemas import deploy
from schemas.common import new_id, utcnow
from schemas.envelope import Envelope
from schemas.errors import ApiError

log = logging.getLogger("modelbus.tabular_serving")


@dataclass
class Loaded:
    model_id: str
    model_type: str
    model: scoring.TabularModel
    features: list[str]

    def score(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        return scoring.score(self.model, scoring.feature_matrix(rows, self.features))


class TabularServing:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.state: deploy.DeploymentState | None = None
        self.models: dict[str, Loaded] = {}
        self._refresher = Periodic(  # keeps serving the last good state when a refresh fails
            "tabular-deploy-refresh", self.refresh, lambda: deps.settings.deploy_refresh_ms / 1000, log=log
        )
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        with contextlib.suppress(Exception):
            await self.refresh()
        self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()

    async def refresh(self) -> bool:
        """Re-reads the deployment; loads newly needed models before switching. True if it changed."""
        doc = await self.deps.db[mongo.DEPLOYMENTS].find_one({"_id": deploy.FAMILY})
        if doc is None or (self.state is not None and doc["version"] == self.state.version):
            return False
        state = deploy.DeploymentState.model_validate(doc)
        needed = [
            m
            for m in (state.production, state.canary.model_id if state.canary else None,
                      state.shadow.model_id if state.shadow else None)
            if m
        ]
        spare = state.previous[-1:] if state.previous else []
        for model_id in [*needed, *spare]:
            if model_id not in self.models:
                try:
                    self.models[model_id] = await self._load(model_id)
                except Exception:
                    if model_id in needed:
                        raise
                    log.warning("could not preload the previous model", extra={"model_id": model_id})
        self.state = state
        for model_id in [m for m in self.models if m not in needed and m not in spare]:
            del self.models[model_id]
        log.info(
            "deployment changed",
            extra={
                "version": state.version,
                "production": state.production,
                "canary": state.canary.model_dump() if state.canary else None,
            },
        )
        return True

    async def _load(self, model_id: str) -> Loaded:
        doc = await self.deps.db[mongo.MODELS].find_one({"_id": model_id})
        if doc is None:
            raise RuntimeError(f"model {model_id} is not in the registry")
        data = await artifacts.model_artifact(self.deps.db, doc)
        model = await asyncio.to_thread(scoring.load_model, doc["model_type"], data)
        return Loaded(model_id, doc["model_type"], model, list(model.feature_names))

    async def predict(self, body: deploy.ScoreRecords, env: Envelope) -> Alongside:
        state = self.state
        if state is None or state.production is None:
            await self.refresh()
            state = self.state
        if state is None or state.production is None:
            raise ApiError(
                409, "NO_PRODUCTION_MODEL", "no model is in production; promote one with POST /v1/ml/deploy/production"
            )
        records = body.records
        canary = state.canary
        out: list[dict[str, Any]] = []
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            pid = new_id("pred")
            key = record.routing_key or pid
            arm = choose_arm(key, canary.percentage, salt=canary.canary_id) if canary else "baseline"
            model_id = canary.model_id if canary and arm == "canary" else state.production
            out.append(
                {
                    "prediction_id": pid,
                    "model_id": model_id,
                    "arm": arm,
                    "canary_id": canary.canary_id if canary else None,
                    "percentage": canary.percentage if canary else None,
                    "routing_key": record.routing_key,
                    "score": None,
                    "label": None,
                    "error": None,
                    "latency_ms": 0.0,
                }
            )
            groups.setdefault(model_id, []).append(i)
        for model_id, rows in groups.items():
            t0 = time.perf_counter()
            try:
                loaded = self.models[model_id]
                scores, labels = loaded.score([records[i].features for i in rows])
                error = None
            except Exception as exc:  # noqa: BLE001 - reported per prediction and in predict.served
                log.warning("prediction failed", extra={"model_id": model_id, "error": str(exc)})
                scores = labels = None
                error = f"{exc.__class__.__name__}: {exc}"
            took = round((time.perf_counter() - t0) * 1000, 3)
            for j, i in enumerate(rows):
                out[i]["latency_ms"] = took
                out[i]["latency_observed"] = j == 0  # one call, one latency observation
                if scores is not None and labels is not None:
                    out[i]["score"] = float(scores[j])
                    out[i]["label"] = int(labels[j])
                else:
                    out[i]["error"] = error
        result = deploy.ScoredRecords.model_validate(  # one validation of plain dicts (cheaper than 1,000 models)
            {
                "predictions": [
                    {
                        "prediction_id": p["prediction_id"],
                        "model_id": p["model_id"],
                        "arm": p["arm"],
                        "canary_id": p["canary_id"],
                        "routing_key": p["routing_key"],
                        "score": p["score"],
                        "label": p["label"],
                        "error": p["error"],
                        "worker_ms": p["latency_ms"],
                    }
                    for p in out
                ]
            }
        )
        shadow = self._shadow_after(out, records, state) if state.shadow is not None else None
        return Alongside(result, self._record(out), after=shadow)  # served events follow the reply at once

    def _shadow(
        self, out: list[dict[str, Any]], records: list[deploy.PredictRecord], state: deploy.DeploymentState
    ) -> list[dict[str, Any]]:
        """The shadow model's answers to the sampled requests production answered (after the reply)."""
        shadow = state.shadow
        loaded = self.models.get(shadow.model_id) if shadow else None
        if shadow is None or loaded is None:
            return []
        rows = [
            i
            for i, p in enumerate(out)
            if p["arm"] == "baseline"
            and choose_arm(records[i].routing_key or p["prediction_id"], shadow.sample_percentage,
                           salt=shadow.shadow_id) == "canary"
        ]
        if not rows:
            return []
        t0 = time.perf_counter()
        try:
            scores, labels = loaded.score([records[i].features for i in rows])
            error = None
        except Exception as exc:  # noqa: BLE001 - a failing shadow must never touch the caller
            scores = labels = None
            error = f"{exc.__class__.__name__}: {exc}"
        took = round((time.perf_counter() - t0) * 1000, 3)
        return [
            {
                "prediction_id": out[i]["prediction_id"],
                "model_id": shadow.model_id,
                "arm": "shadow",
                "canary_id": None,
                "shadow_id": shadow.shadow_id,
                "percentage": shadow.sample_percentage,
                "routing_key": out[i]["routing_key"],
                "score": float(scores[j]) if scores is not None else None,
                "label": int(labels[j]) if labels is not None else None,
                "error": error,
                "latency_ms": took,
                "latency_observed": j == 0,
            }
            for j, i in enumerate(rows)
        ]

    async def _shadow_after(
        self, out: list[dict[str, Any]], records: list[deploy.PredictRecord], state: deploy.DeploymentState
    ) -> None:
        """Once the reply is delivered: the shadow's answers, recorded like any served prediction."""
        shadowed = self._shadow(out, records, state)
        if shadowed:
            await self._record(shadowed)

    async def _record(self, out: list[dict[str, Any]]) -> None:
        now = utcnow()
        envs = Envelope.wrap_many(
            deploy.PREDICTION_SERVED,
            deploy.PredictionServed,
            [
                {
                    "prediction_id": p["prediction_id"],
                    "model_id": p["model_id"],
                    "arm": p["arm"],
                    "canary_id": p["canary_id"],
                    "shadow_id": p.get("shadow_id"),
                    "percentage": p["percentage"],
                    "score": p["score"],
                    "label": p["label"],
                    "latency_ms": p["latency_ms"],
                    "latency_observed": p.get("latency_observed", True),
                    "error": p["error"],
                    "routing_key": p["routing_key"],
                    "worker_id": self.deps.worker_id,
                    "served_at": now,
                }
                for p in out
            ],
            subject="prediction_id",
            source=f"modelbus/worker/{self.deps.worker_id}",
        )
        acks = self.deps.publisher.send_many_direct(
            "predict.served", [(e.to_bytes(), e.subject, envelope_headers(e)) for e in envs], lingering=True
        )
        log_failures(acks, "recording predictions")


def register(broker: KafkaBroker, deps: Deps, serving: ServingService | None) -> TabularServing:
    assert serving is not None, "tabular predictions run in the serving role"
    service = TabularServing(deps)
    serving.add(deploy.TABULAR_PREDICT, service.predict)
    return service
