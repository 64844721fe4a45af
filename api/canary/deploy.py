"""``/v1/ml/deploy`` (seed 000), ``/v1/ml/predict`` and ``/v1/ml/feedback``.

Deployment steps are validated against the projections, compare-and-set on the family's deployment
version, published on ``deploy.events`` / ``model.events`` and applied at once (``producers.canary.deploy``).
Predictions go over Kafka request/reply to the prediction workers; feedback is checked against the
predictions the workers recorded and published on ``predict.feedback``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.security import api_key_guard, principal_of
from api.workers import worker_result
from infra import mongo
from producers.canary.deploy import DeployConflict, Deployer, Step, current_state
from producers.publisher import EventPublisher
from producers.rpc import RpcClient
from schemas import deploy
from schemas.common import iso, new_id, utcnow
from schemas.envelope import Envelope
from schemas.errors import ApiError

EMERGENCY_REASON = {
    "ko": "긴급 롤백 - 현재 프로덕션 모델 문제 발생",
    "en": "Emergency rollback - a problem with the current production model",
}
NO_VERDICT = {
    "ko": "아직 분석 구간이 끝나지 않음 → 보류.",
    "en": "No analysis window has closed yet → hold.",
}


def language(request: Request[Any, Any, Any]) -> str:
    """``ko`` (default, as in the seed) or ``en``, from ``Accept-Language`` (q-values honoured)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in ("ko", "en") and q > 0:
            ranked.append((-q, i, primary))
    return sorted(ranked)[0][2] if ranked else "ko"


def _actor(request: Request[Any, Any, Any]) -> str | None:
    principal = principal_of(request)
    return principal.key_id if principal else None


def _deployer(request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher) -> Deployer:
    return Deployer(db, publisher, actor=_actor(request))


async def _run(coro: Any) -> Step:
    try:
        return await coro
    except DeployConflict as exc:
        raise ApiError(exc.status, exc.code, exc.message, field=exc.field, **exc.extra) from exc


DESCRIPTIVE = (
    "descriptive: this arm's figures pooled over the analysis; the intervals (accuracy_ci, precision_ci, recall_ci) "
    "are fixed-sample 95% Wilson intervals, not valid under repeated looks and never used for the verdict"
)
ANYTIME = (
    "each compared metric's difference (canary or shadow minus production) with its anytime-valid interval: a "
    "confidence sequence, stratified by traffic step and 10-minute block, valid however often it is looked at"
)
SHADOW_NO_VERDICT = {
    "ko": "아직 분석 구간이 끝나지 않음 → 보류.",
    "en": "No analysis window has closed yet → hold.",
}


def _arm_metrics(seed: dict[str, Any], totals: dict[str, Any] | None) -> deploy.ArmMetrics:
    t = totals or {}
    return deploy.ArmMetrics(
        accuracy=seed.get("accuracy"),
        avg_response_time_ms=seed.get("avg_response_time_ms"),
        model_id=t.get("model_id"),
        requests=t.get("requests", 0),
        labelled=t.get("labelled", 0),
        waiting_for_label=t.get("waiting_for_label", 0),
        labels_too_late=t.get("labels_too_late", 0),
        errors=t.get("errors", 0),
        error_rate=t.get("error_rate"),
        latency_p50_ms=t.get("latency_p50_ms"),
        latency_p95_ms=t.get("latency_p95_ms"),
        latency_p99_ms=t.get("latency_p99_ms"),
        precision=t.get("precision"),
        recall=t.get("recall"),
        f1=t.get("f1"),
        accuracy_ci=t.get("accuracy_ci"),
        precision_ci=t.get("precision_ci"),
        recall_ci=t.get("recall_ci"),
        descriptive=True,
    )


def _counts(new: deploy.ArmMetrics, old: deploy.ArmMetrics, name: str) -> deploy.ArmCounts:
    return deploy.ArmCounts(new_model=getattr(new, name), old_model=getattr(old, name))


def analysis_status(doc: dict[str, Any], lang: str, unmatched: int) -> deploy.AnalysisStatus:
    """The status of a canary or a shadow: the seed's fields, the evidence, each compared metric's
    anytime-valid interval, the verdict with its reason and numbers."""
    window = doc.get("metrics") or {}
    seed = window.get("metrics") or {}
    totals = window.get("totals") or {}
    verdict = doc.get("verdict") or {}
    current = window.get(f"reason_{lang}") if window.get("recommendation") == verdict.get("recommendation") else None
    reason = current or verdict.get(f"reason_{lang}") or NO_VERDICT[lang]  # the latest window's figures
    new = _arm_metrics(seed.get("new_model") or {}, totals.get("canary"))
    old = _arm_metrics(seed.get("old_model") or {}, totals.get("baseline"))
    return deploy.AnalysisStatus(
        model_id=doc["model_id"],
        status=doc["status"],
        metrics=deploy.ArmsMetrics(new_model=new, old_model=old),
        metrics_note=DESCRIPTIVE,
        comparison=window.get("comparison") or [],
        comparison_note=ANYTIME,
        evidence=deploy.AnalysisEvidence(
            labelled=_counts(new, old, "labelled"),
            waiting_for_label=_counts(new, old, "waiting_for_label"),
            labels_too_late=_counts(new, old, "labels_too_late"),
            labels_without_prediction=unmatched,
            strata=window.get("strata", 0),
            label_horizon_days=(doc.get("policy") or {}).get("label_horizon_days"),
        ),
        recommendation=verdict.get("recommendation") or "hold",
        reason=reason,
        reason_language=lang,
        numbers=verdict.get("numbers"),
        baseline_model_id=doc.get("baseline_model_id"),
        started_at=iso(doc["started_at"]),
        ended_at=iso(doc["ended_at"]) if doc.get("ended_at") else None,
        window_end=window.get("window_end"),
        verdict_at=iso(verdict["at"]) if verdict.get("at") else None,
        policy=doc.get("policy") or {},
    )


def canary_status(doc: dict[str, Any], lang: str, unmatched: int = 0) -> deploy.CanaryStatusReport:
    return deploy.CanaryStatusReport(
        canary_id=doc["canary_id"],
        current_traffic_percentage=doc["percentage"],
        **dict(analysis_status(doc, lang, unmatched)),
        monitoring_duration_minutes=doc.get("monitoring_duration_minutes"),
        auto=doc.get("auto", False),
        steps=[{**s, "at": iso(s["at"])} for s in doc.get("steps", [])],
    )


def shadow_status(doc: dict[str, Any], lang: str, unmatched: int = 0) -> deploy.ShadowStatusReport:
    return deploy.ShadowStatusReport(
        shadow_id=doc["shadow_id"],
        sample_percentage=doc.get("sample_percentage"),
        current_traffic_percentage=0.0,
        **dict(analysis_status(doc, lang, unmatched)),
    )


async def unmatched_labels(db: AsyncDatabase) -> int:
    """Labels received for prediction ids never seen (yet): kept, counted, joined if the prediction comes."""
    doc = await db[mongo.CANARY_STRATA].find_one({"_id": deploy.UNMATCHED_LABELS})
    return int(((doc or {}).get("counts") or {}).get("labels", 0))


def resolved_policy(request: Request[Any, Any, Any], overrides: deploy.CanaryPolicyOverrides | None) -> dict[str, Any]:
    """The policy stored with a canary or shadow: the settings' defaults, then the request's overrides."""
    settings = request.app.state.settings
    return {
        "min_requests": settings.canary_min_requests,
        "min_labelled": settings.canary_min_labelled,
        "label_horizon_days": settings.canary_label_horizon_days,
        "window_seconds": settings.canary_window_seconds,
    } | (overrides.model_dump(exclude_none=True) if overrides else {})


def history_entry(doc: dict[str, Any]) -> deploy.DeployHistoryEntry:
    return deploy.DeployHistoryEntry(
        event_id=doc["event_id"],
        action=doc["action"],
        model_id=doc.get("model_id"),
        actor=doc.get("actor"),
        time=iso(doc["time"]),
        reason=doc.get("reason"),
        canary_id=doc.get("canary_id"),
        shadow_id=doc.get("shadow_id"),
        traffic_percentage=doc.get("percentage"),
        sample_percentage=doc.get("sample_percentage"),
        changes=doc.get("changes", []),
        metrics=doc.get("metrics"),
        production_model_id=doc["state"].get("production"),
        deployment_version=doc["state"].get("version"),
    )


FEEDBACK_GRACE_SECONDS = 2.0
"""how long feedback waits for a prediction id it does not know yet before reporting it unknown
(the ``predictions`` projection trails ``predict.served`` by one projector batch, ~0.1-0.3 s)"""


class DeployController(Controller):
    path = "/v1/ml/deploy"
    guards = [api_key_guard]
    tags = ["ml: deployment"]

    @post(
        "/staging",
        status_code=200,
        summary="Deploy a trained model to staging",
        responses=error_responses(400, 404, 409, 422),
    )
    async def staging(
        self, request: Request[Any, Any, Any], data: deploy.ModelRef, db: AsyncDatabase, publisher: EventPublisher
    ) -> deploy.StagingDeployment:
        step = await _run(_deployer(request, db, publisher).staging(data.model_id))
        assert step.at is not None
        return deploy.StagingDeployment(
            model_id=data.model_id, environment="staging", deployed_at=iso(step.at), status="active"
        )

    @post(
        "/canary/start",
        status_code=HTTP_202_ACCEPTED,
        summary="Start a canary of a staged model",
        responses=error_responses(400, 404, 409, 422),
    )
    async def canary_start(
        self, request: Request[Any, Any, Any], data: deploy.CanaryStart, db: AsyncDatabase, publisher: EventPublisher
    ) -> deploy.CanaryStarted:
        policy = resolved_policy(request, data.policy)
        step = await _run(
            _deployer(request, db, publisher).canary_start(
                data.model_id,
                data.initial_traffic_percentage,
                data.monitoring_duration_minutes,
                auto=data.auto,
                policy=policy,
            )
        )
        assert step.at is not None and step.state is not None and step.state.canary is not None
        return deploy.CanaryStarted(
            canary_id=step.canary_id,
            model_id=data.model_id,
            current_traffic_percentage=data.initial_traffic_percentage,
            status="monitoring",
            started_at=iso(step.at),
            baseline_model_id=step.state.canary.baseline_model_id,
            monitoring_duration_minutes=data.monitoring_duration_minutes,
            auto=data.auto,
        )

    @get(
        "/canary/{canary_id:str}/status",
        summary="Canary metrics per arm and the recommendation",
        responses=error_responses(404, 422),
    )
    async def canary_status(
        self, request: Request[Any, Any, Any], canary_id: str, db: AsyncDatabase
    ) -> deploy.CanaryStatusReport:
        doc = await db[mongo.CANARIES].find_one({"_id": canary_id})
        if doc is None:
            raise ApiError(404, "CANARY_NOT_FOUND", f"no canary {canary_id!r}", field="canary_id")
        return canary_status(doc, language(request), await unmatched_labels(db))

    @post(
        "/shadow/start",
        status_code=HTTP_202_ACCEPTED,
        summary="Mirror production's requests to a model",
        responses=error_responses(400, 404, 409, 422),
    )
    async def shadow_start(
        self, request: Request[Any, Any, Any], data: deploy.ShadowStart, db: AsyncDatabase, publisher: EventPublisher
    ) -> deploy.ShadowStarted:
        step = await _run(
            _deployer(request, db, publisher).shadow_start(
                data.model_id, data.sample_percentage, policy=resolved_policy(request, data.policy)
            )
        )
        assert step.at is not None and step.state is not None and step.state.shadow is not None
        return deploy.ShadowStarted(
            shadow_id=step.shadow_id,
            model_id=data.model_id,
            sample_percentage=data.sample_percentage,
            status="monitoring",
            started_at=iso(step.at),
            baseline_model_id=step.state.shadow.baseline_model_id,
        )

    @get(
        "/shadow/{shadow_id:str}/status",
        summary="Shadow model against production on the same requests",
        responses=error_responses(404, 422),
    )
    async def shadow_status(
        self, request: Request[Any, Any, Any], shadow_id: str, db: AsyncDatabase
    ) -> deploy.ShadowStatusReport:
        doc = await db[mongo.SHADOWS].find_one({"_id": shadow_id})
        if doc is None:
            raise ApiError(404, "SHADOW_NOT_FOUND", f"no shadow {shadow_id!r}", field="shadow_id")
        return shadow_status(doc, language(request), await unmatched_labels(db))

    @post(
        "/shadow/{shadow_id:str}/stop",
        status_code=200,
        summary="Stop mirroring requests to the shadow model",
        responses=error_responses(404, 409, 422),
    )
    async def shadow_stop(
        self, request: Request[Any, Any, Any], shadow_id: str, db: AsyncDatabase, publisher: EventPublisher
    ) -> deploy.ShadowStopped:
        lang = language(request)
        reason = "섀도 중단 요청" if lang == "ko" else "shadow stopped on request"
        step = await _run(_deployer(request, db, publisher).shadow_stop(shadow_id, reason=reason))
        assert step.at is not None
        return deploy.ShadowStopped(shadow_id=shadow_id, status="stopped", stopped_at=iso(step.at))

    @post(
        "/canary/{canary_id:str}/increase-traffic",
        status_code=200,
        summary="Raise the canary's traffic share",
        responses=error_responses(400, 404, 409, 422),
    )
    async def increase(
        self,
        request: Request[Any, Any, Any],
        canary_id: str,
        data: deploy.TrafficIncrease,
        db: AsyncDatabase,
        publisher: EventPublisher,
    ) -> deploy.CanaryTrafficIncreased:
        step = await _run(_deployer(request, db, publisher).increase(canary_id, data.target_percentage))
        doc = await db[mongo.CANARIES].find_one({"_id": canary_id})
        assert doc is not None and step.at is not None
        status = canary_status(doc, language(request))
        return deploy.CanaryTrafficIncreased(**dict(status), updated_at=iso(step.at))

    @post(
        "/canary/{canary_id:str}/rollback",
        status_code=200,
        summary="End a canary without promoting it",
        responses=error_responses(404, 409, 422),
    )
    async def canary_rollback(
        self, request: Request[Any, Any, Any], canary_id: str, db: AsyncDatabase, publisher: EventPublisher
    ) -> deploy.CanaryRolledBack:
        lang = language(request)
        reason = "카나리 중단 요청" if lang == "ko" else "canary stopped on request"
        step = await _run(_deployer(request, db, publisher).canary_rollback(canary_id, reason=reason))
        assert step.at is not None and step.state is not None
        return deploy.CanaryRolledBack(
            canary_id=canary_id,
            status="rolled_back",
            production_model_id=step.state.production,
            rolled_back_at=iso(step.at),
        )

    @post(
        "/production",
        status_code=200,
        summary="Promote a staged or canary model to production (100%)",
        responses=error_responses(400, 404, 409, 422),
    )
    async def production(
        self, request: Request[Any, Any, Any], data: deploy.ModelRef, db: AsyncDatabase, publisher: EventPublisher
    ) -> deploy.ProductionDeployment:
        step = await _run(_deployer(request, db, publisher).production(data.model_id))
        assert step.at is not None
        archived = [c.model_id for c in step.model_changes if c.to_status == "archived"]
        return deploy.ProductionDeployment(
            model_id=data.model_id,
            environment="production",
            traffic_percentage=100,
            deployed_at=iso(step.at),
            previous_model_id=archived[0] if archived else None,
            canary_id=step.canary_id,
        )

    @post(
        "/rollback/emergency",
        status_code=200,
        summary="Restore the previous production model at once",
        responses=error_responses(409),
    )
    async def emergency(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> deploy.EmergencyRollback:
        lang = language(request)
        step = await _run(_deployer(request, db, publisher).emergency_rollback(reason=EMERGENCY_REASON[lang]))
        assert step.at is not None and step.state is not None
        rolled = [c.model_id for c in step.model_changes if c.to_status == "rolled_back"]
        return deploy.EmergencyRollback(
            rolled_back_to=step.state.production,
            reason=EMERGENCY_REASON[lang],
            rolled_back_at=iso(step.at),
            rolled_back_from=rolled[0] if rolled else None,
            canary_id=step.canary_id,
        )

    @post(
        "/rollback",
        status_code=200,
        summary="Roll production back to a given earlier model",
        responses=error_responses(400, 404, 409, 422),
    )
    async def rollback(
        self,
        request: Request[Any, Any, Any],
        data: deploy.RollbackRequest,
        db: AsyncDatabase,
        publisher: EventPublisher,
    ) -> deploy.VersionRollback:
        step = await _run(_deployer(request, db, publisher).rollback(data.model_id, reason=data.reason))
        assert step.at is not None
        model = await db[mongo.MODELS].find_one({"_id": data.model_id})
        assert model is not None
        rolled = [c.model_id for c in step.model_changes if c.to_status == "rolled_back"]
        return deploy.VersionRollback(
            model_id=data.model_id,
            model_name=model.get("model_name"),
            version=model.get("version"),
            model_type=model.get("model_type"),
            status=model["status"],
            metrics=model.get("metrics"),
            environment="production",
            traffic_percentage=100,
            reason=data.reason,
            rolled_back_at=iso(step.at),
            rolled_back_from=rolled[0] if rolled else None,
        )

    @get(
        "/current",
        summary="What is deployed now: production, previous models, staging, active canary",
        responses=error_responses(),
    )
    async def current(self, db: AsyncDatabase) -> deploy.DeploymentState:
        return await current_state(db)

    @get("/history", summary="Audit trail of every deployment change, newest first", responses=error_responses(422))
    async def history(
        self,
        db: AsyncDatabase,
        model_id: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> deploy.DeployHistory:
        query: dict[str, Any] = {"family": deploy.FAMILY}
        if model_id:
            query["$or"] = [{"model_id": model_id}, {"changes.model_id": model_id}]
        cursor = db[mongo.DEPLOY_HISTORY].find(query).sort([("state.version", -1)]).limit(limit)
        items = [history_entry(d) async for d in cursor]
        return deploy.DeployHistory(history=items, count=len(items))


class PredictController(Controller):
    path = "/v1/ml"
    guards = [api_key_guard]
    tags = ["ml: serving"]

    @post(
        "/predict",
        status_code=200,
        summary="Score one record or a batch of up to 1,000",
        responses=error_responses(400, 404, 409, 422),
    )
    async def predict(self, data: deploy.PredictRequest, rpc: RpcClient) -> deploy.Prediction | deploy.PredictionBatch:
        single = data.records is None
        records = (
            [deploy.PredictRecord(features=data.features or {}, routing_key=data.routing_key)]
            if single
            else data.records or []
        )
        key = records[0].routing_key or new_id("pred")
        t0 = time.perf_counter()
        result = await worker_result(rpc, deploy.TABULAR_PREDICT, deploy.ScoreRecords(records=records), key=key)
        latency = round((time.perf_counter() - t0) * 1000, 3)
        # the worker's ScoredRecords validated once, straight into the answer (Prediction extends ScoredRecord)
        predictions = [p | {"latency_ms": latency} for p in result.get("predictions", ())]
        if single:
            return deploy.Prediction.model_validate(predictions[0])
        return deploy.PredictionBatch.model_validate(
            {"predictions": predictions, "count": len(predictions), "latency_ms": latency}
        )

    @post(
        "/feedback",
        status_code=HTTP_202_ACCEPTED,
        summary="True labels of earlier predictions",
        responses=error_responses(400, 404, 422),
    )
    async def feedback(
        self,
        request: Request[Any, Any, Any],
        data: deploy.FeedbackRequest,
        db: AsyncDatabase,
        publisher: EventPublisher,
    ) -> deploy.FeedbackAccepted:
        items = data.items()
        ids = list(dict.fromkeys(i.prediction_id for i in items))
        served = {"time": {"$exists": True}}  # a record holding only a label is not a prediction
        known = await mongo.find_by_ids(db[mongo.PREDICTIONS], ids, served)
        unknown = [i for i in ids if i not in known]
        deadline = time.monotonic() + FEEDBACK_GRACE_SECONDS
        while unknown and time.monotonic() < deadline:  # predictions are projected from predict.served in batches
            await asyncio.sleep(0.1)
            known |= await mongo.find_by_ids(db[mongo.PREDICTIONS], unknown, served)
            unknown = [i for i in ids if i not in known]
        if data.feedback is None and unknown:
            raise ApiError(
                404, "PREDICTION_NOT_FOUND", f"no prediction {unknown[0]!r}", field="prediction_id", unknown=unknown
            )
        actor, now = _actor(request), utcnow()
        envs = []
        for item in items:
            served = known.get(item.prediction_id)
            if served is None:
                continue
            payload = deploy.PredictionFeedback(
                prediction_id=item.prediction_id,
                label=item.label,
                model_id=served.get("model_id"),
                arm=served.get("arm"),
                canary_id=served.get("canary_id"),
                actor=actor,
                received_at=now,
            )
            envs.append(Envelope.wrap(deploy.PREDICTION_FEEDBACK, item.prediction_id, payload, source="modelbus/api"))
        await asyncio.gather(*(publisher.publish("predict.feedback", env, key=env.subject) for env in envs))
        return deploy.FeedbackAccepted(
            accepted=len(envs), unknown=unknown, unknown_count=len(unknown), received_at=iso(now)
        )
