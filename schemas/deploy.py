"""Tabular model deployments (``/v1/ml/deploy``), serving and canary analysis: API bodies, responses and events.

* ``deploy.events``: :class:`DeploymentStep`, one per deployment change (staging, canary start, traffic
  increase, production, rollbacks, canary end). It carries the family's whole deployment state *after*
  the step (``state``), so the ``deployments`` projection is a copy of the latest one, and the audit
  fields (actor, reason, metric snapshot) that make the ``deploy_history`` document. Model status
  changes of the same step are :class:`schemas.jobs.ModelStatusChanged` events on ``model.events``.
* ``predict.served``: :class:`PredictionServed`, one per tabular prediction, and one more per prediction a
  shadow model scored (arm ``shadow``, the same prediction id).
* ``predict.feedback``: :class:`PredictionFeedback`, the true label of a prediction (any time later).
* ``canary.metrics`` / ``canary.recommendations``: :class:`CanaryMetrics` after every analysis window that
  changed the evidence and :class:`CanaryRecommendation` on every change of verdict, for canaries
  (``modelbus.canary.*``) and shadows (``modelbus.shadow.*``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.common import UtcDatetime, document_zero_bounds
from schemas.envelope import Payload
from schemas.rpc import RpcKind

FAMILY = "tabular"
UNMATCHED_LABELS = "_unmatched"
"""``canary_strata`` document counting the labels whose prediction has not been seen (yet)"""
MAX_PREDICT_BATCH = 1000

DEPLOY_STEP = "modelbus.deploy.tabular.step"
PREDICTION_SERVED = "modelbus.predict.served"
PREDICTION_FEEDBACK = "modelbus.predict.feedback"
CANARY_METRICS = "modelbus.canary.metrics"
CANARY_RECOMMENDATION = "modelbus.canary.recommendation"
SHADOW_METRICS = "modelbus.shadow.metrics"
SHADOW_RECOMMENDATION = "modelbus.shadow.recommendation"

DeployAction = Literal[
    "staging",
    "canary_started",
    "traffic_increased",
    "production",
    "canary_rolled_back",
    "emergency_rollback",
    "rollback",
    "shadow_started",
    "shadow_stopped",
]
CanaryStatus = Literal["monitoring", "promoted", "rolled_back"]
ShadowStatus = Literal["monitoring", "stopped", "promoted_to_canary"]
AnalysisKind = Literal["canary", "shadow"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- API bodies ---------------------------------------------------------------------------------------------


class ModelRef(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model_id": "model_v1.3.0"}]})  # the seed's example

    model_id: str = Field(min_length=1, max_length=200)


class CanaryPolicyOverrides(Strict):
    """Optional per-canary (or per-shadow) overrides of the verdict policy and the analysis window."""

    min_requests: int | None = Field(None, ge=1, description="requests per arm before proceed (minimum exposure)")
    min_labelled: int | None = Field(None, ge=1, description="labelled predictions per arm before proceed")
    harm_min_labelled: int | None = Field(
        None, ge=10, description="labelled predictions per arm before accuracy can show harm (default 30)"
    )
    harm_min_requests: int | None = Field(
        None, ge=10, description="requests per arm before error rate or latency can show harm (default 30)"
    )
    accuracy_tolerance: float | None = Field(None, ge=0, lt=1, description="non-inferiority margin on accuracy")
    error_rate_tolerance: float | None = Field(None, ge=0, lt=1, description="allowed rise of the error rate")
    alpha: float | None = Field(None, gt=0, lt=1, description="family-wise error over all looks and metrics")
    label_horizon_days: float | None = Field(
        None, gt=0, le=3650, description="labels are joined until this long after the end (default 30 days)"
    )
    label_maturity_seconds: float | None = Field(
        None, ge=0, description="accuracy counts only predictions served at least this long ago"
    )
    window_seconds: float | None = Field(None, gt=0, le=3600, description="analysis window length")


class CanaryStart(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model_id": "model_v1.3.0", "initial_traffic_percentage": 10, "monitoring_duration_minutes": 30}
            ]
        }
    )  # the seed's example

    model_id: str = Field(min_length=1, max_length=200)
    initial_traffic_percentage: float = Field(10, gt=0, le=100)
    monitoring_duration_minutes: float = Field(30, gt=0, le=7 * 24 * 60)
    auto: bool = Field(False, description="follow the verdicts: 10 → 25 → 50 → 100 on proceed, roll back on rollback")
    policy: CanaryPolicyOverrides | None = None


class ShadowStart(Strict):
    model_id: str = Field(min_length=1, max_length=200)
    sample_percentage: float = Field(
        100, gt=0, le=100, description="share of production's requests the shadow model also scores"
    )
    policy: CanaryPolicyOverrides | None = None


class TrafficIncrease(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"target_percentage": 25}]})  # the seed's example

    target_percentage: float = Field(gt=0, le=100)


class RollbackRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model_id": "model_v1.2.0", "reason": "v1.3.0의 오탐률이 높아 이전 버전으로 복귀"}]
        }
    )  # the seed's example

    model_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)


class PredictRecord(Strict):
    features: dict[str, float | int | bool | None]
    routing_key: str | None = Field(None, max_length=200)


class PredictRequest(Strict):
    """One record (``features`` [+ ``routing_key``]) or a batch (``records``, up to 1,000)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # _one_form, exactly one of the two forms (if/then/else: a generated client reads past it)
            "if": {"required": ["features"], "properties": {"features": {"type": "object"}}},
            "then": {"properties": {"records": {"type": "null"}}},
            "else": {"required": ["records"], "properties": {"records": {"type": "array"}}},
            "examples": [
                {"features": {"amount": 125.5, "hour": 14, "log_amount": 4.83}, "routing_key": "user-1"},
                {"records": [{"features": {"amount": 125.5, "hour": 14}, "routing_key": "user-1"}]},
            ],
        },
    )

    features: dict[str, float | int | bool | None] | None = None
    routing_key: str | None = Field(None, max_length=200, description="sticky routing key (user, account…)")
    records: list[PredictRecord] | None = Field(None, min_length=1, max_length=MAX_PREDICT_BATCH)

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        if (self.features is None) == (self.records is None):
            raise ValueError("give either features (one record) or records (a batch), not both")
        return self


class FeedbackItem(Strict):
    prediction_id: str = Field(min_length=1, max_length=100)
    label: Literal[0, 1]


class FeedbackRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # _one_form: a batch, or one labelled prediction
            "if": {"required": ["feedback"], "properties": {"feedback": {"type": "array"}}},
            "then": {"properties": {"prediction_id": {"type": "null"}, "label": {"type": "null"}}},
            "else": {
                "required": ["prediction_id", "label"],
                "properties": {"prediction_id": {"type": "string"}, "label": {"enum": [0, 1]}},
            },
            "examples": [{"prediction_id": "pred_9f2c1a0b3e4d", "label": 1}],
        },
    )

    prediction_id: str | None = Field(None, min_length=1, max_length=100)
    label: Literal[0, 1] | None = None
    feedback: list[FeedbackItem] | None = Field(None, min_length=1, max_length=MAX_PREDICT_BATCH)

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackRequest:
        single = self.prediction_id is not None or self.label is not None
        if single == (self.feedback is not None):
            raise ValueError("give either prediction_id and label, or feedback (a batch)")
        if single and (self.prediction_id is None or self.label is None):
            raise ValueError("prediction_id and label are both required")
        return self

    def items(self) -> list[FeedbackItem]:
        if self.feedback is not None:
            return self.feedback
        assert self.prediction_id is not None and self.label is not None
        return [FeedbackItem(prediction_id=self.prediction_id, label=self.label)]


# -- events -------------------------------------------------------------------------------------------------


class CanaryState(BaseModel):
    """The active canary of a family: the model it routes a share of production's traffic to."""

    canary_id: str
    model_id: str
    baseline_model_id: str
    percentage: float = Field(description="the canary's share of production's traffic, in percent")
    auto: bool = False


class ShadowState(BaseModel):
    """The active shadow of a family: the model that also scores a sample of production's requests."""

    shadow_id: str
    model_id: str
    baseline_model_id: str
    sample_percentage: float


class DeploymentState(BaseModel):
    """A family's deployment after a step: what the prediction workers serve (and mirror to a shadow)."""

    family: str = FAMILY
    version: int
    production: str | None = None
    previous: list[str] = Field(default_factory=list, description="earlier production models, most recent last")
    staging: list[str] = Field(default_factory=list)
    canary: CanaryState | None = None
    shadow: ShadowState | None = None


class ModelChange(BaseModel):
    """A model's status change made by a deployment step."""

    model_id: str
    from_status: str
    to_status: str
    status_version: int


class DeploymentStep(Payload):
    action: DeployAction
    family: str = FAMILY
    model_id: str | None
    actor: str | None
    reason: str | None = None
    state: DeploymentState
    changes: list[ModelChange] = Field(default_factory=list)
    canary_id: str | None = None
    canary_status: CanaryStatus | None = None
    shadow_id: str | None = None
    shadow_status: ShadowStatus | None = None
    percentage: float | None = None
    sample_percentage: float | None = None
    monitoring_duration_minutes: float | None = None
    policy: dict[str, Any] | None = Field(None, description="the complete verdict policy of a canary or shadow")
    metrics: dict[str, Any] | None = Field(None, description="metric snapshot at the moment of the step")


class PredictionServed(Payload):
    prediction_id: str
    model_id: str | None
    arm: Literal["baseline", "canary", "shadow"]
    canary_id: str | None = None
    shadow_id: str | None = None
    percentage: float | None = Field(
        None, description="the canary's traffic share when served (arm baseline/canary), the shadow's sample share"
    )
    score: float | None = None
    label: int | None = None
    latency_ms: float
    latency_observed: bool = Field(
        True,
        description="false for all but one of the records a model call scored at once: they share one latency, "
        "which the canary analysis counts as one observation",
    )
    error: str | None = None
    routing_key: str | None = None
    worker_id: str | None = None
    served_at: UtcDatetime


class PredictionFeedback(Payload):
    prediction_id: str
    label: int
    model_id: str | None = None
    arm: str | None = None
    canary_id: str | None = None
    actor: str | None = None
    received_at: UtcDatetime


class CanaryMetrics(Payload):
    """The evidence of a canary or shadow after an analysis window (cumulative, all strata)."""

    canary_id: str = Field(description="the canary's or the shadow's id")
    kind: AnalysisKind = "canary"
    window_start: UtcDatetime
    window_end: UtcDatetime
    totals: dict[str, Any] = Field(description="descriptive per-arm figures pooled over strata (baseline, canary)")
    metrics: dict[str, Any] = Field(description="the status endpoint's new_model / old_model figures")
    comparison: list[dict[str, Any]] = Field(
        default_factory=list, description="each compared metric: difference and its anytime-valid interval"
    )
    recommendation: str | None = None
    reason_en: str | None = Field(None, description="the current verdict's reason (English), while it runs")
    reason_ko: str | None = Field(None, description="the current verdict's reason (Korean), while it runs")
    strata: int = 0


class CanaryRecommendation(Payload):
    canary_id: str = Field(description="the canary's or the shadow's id")
    kind: AnalysisKind = "canary"
    recommendation: Literal["proceed", "hold", "rollback", "promote_to_canary", "reject"]
    previous: str | None = None
    reason_en: str
    reason_ko: str
    numbers: dict[str, Any]
    window_end: UtcDatetime


# -- API responses ------------------------------------------------------------------------------------------


class StagingDeployment(BaseModel):
    """``POST /v1/ml/deploy/staging``: the model is staged."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_id": "model_v1.3.0",
                    "environment": "staging",
                    "deployed_at": "2025-11-16T14:00:00Z",
                    "status": "active",
                }
            ]
        }
    )  # the seed's example

    model_id: str
    environment: str = Field(description="always 'staging'")
    deployed_at: str = Field(description="ISO 8601 UTC")
    status: str = Field(description="always 'active'")


class CanaryStarted(BaseModel):
    """``POST /v1/ml/deploy/canary/start`` (202): the canary serves its share of traffic and is monitored."""

    canary_id: str
    model_id: str
    current_traffic_percentage: float | int = Field(
        description="initial_traffic_percentage as requested (the integer 10 when it was not given)"
    )
    status: str = Field(description="always 'monitoring'")
    started_at: str = Field(description="ISO 8601 UTC")
    baseline_model_id: str = Field(description="the production model the canary is compared with")
    monitoring_duration_minutes: float | int = Field(description="as requested (the integer 30 when it was not given)")
    auto: bool = Field(description="the verdicts are followed: 10 → 25 → 50 → 100 on proceed, rollback on rollback")


class ArmMetrics(BaseModel):
    """One arm's figures (canary or shadow: ``new_model``; production: ``old_model``), pooled over the analysis.

    Descriptive only: the verdict uses the anytime-valid ``comparison``, never these figures or intervals."""

    accuracy: float | None = Field(description="the seed's figure: share of labelled predictions that were right")
    avg_response_time_ms: float | None = Field(description="the seed's figure: mean latency")
    model_id: str | None
    requests: int = Field(description="predictions served")
    labelled: int = Field(description="predictions whose true label arrived in time")
    waiting_for_label: int = Field(description="predictions still waiting for their label")
    labels_too_late: int = Field(description="labels that arrived after the label horizon (not counted)")
    errors: int = Field(description="predictions that failed")
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    accuracy_ci: list[float] | None = Field(description="fixed-sample 95% Wilson interval [low, high]")
    precision_ci: list[float] | None = Field(description="fixed-sample 95% Wilson interval [low, high]")
    recall_ci: list[float] | None = Field(description="fixed-sample 95% Wilson interval [low, high]")
    descriptive: bool = Field(True, description="always true: these figures never decide the verdict")


class ArmsMetrics(BaseModel):
    """Both arms' descriptive figures: ``new_model`` is the canary or shadow model, ``old_model`` production."""

    new_model: ArmMetrics
    old_model: ArmMetrics


class ArmCounts(BaseModel):
    """A count per arm."""

    new_model: int
    old_model: int


class AnalysisEvidence(BaseModel):
    """How much evidence the analysis has: labels per arm, labels without a prediction, strata."""

    labelled: ArmCounts
    waiting_for_label: ArmCounts
    labels_too_late: ArmCounts
    labels_without_prediction: int = Field(
        description="labels received for prediction ids never seen (yet): kept and joined if the prediction comes"
    )
    strata: int = Field(description="traffic step x 10-minute block strata the comparison is stratified by")
    label_horizon_days: float | None = Field(description="labels are joined until this long after the end")


class AnalysisStatus(BaseModel):
    """The analysis of a canary or a shadow against production: evidence, intervals and verdict."""

    model_id: str
    status: str = Field(
        description="canary: monitoring, promoted or rolled_back; shadow: monitoring, stopped or promoted_to_canary"
    )
    metrics: ArmsMetrics = Field(
        description="descriptive figures per arm: new_model is the canary or shadow model, old_model production"
    )
    metrics_note: str = Field(description="what the per-arm metrics are (descriptive) and are not")
    comparison: list[dict[str, Any]] = Field(
        description="each compared metric: the difference (new minus production) and its anytime-valid interval"
    )
    comparison_note: str = Field(description="how the comparison's intervals are made")
    evidence: AnalysisEvidence
    recommendation: str = Field(
        description="canary: proceed, hold or rollback; shadow: promote_to_canary, hold or reject; hold until "
        "a window has closed"
    )
    reason: str = Field(description="the verdict's reason, in reason_language")
    reason_language: str = Field(description="ko (default) or en, from Accept-Language")
    numbers: dict[str, Any] | None = Field(description="the figures behind the verdict; null before the first one")
    baseline_model_id: str | None = Field(description="the production model compared with")
    started_at: str = Field(description="ISO 8601 UTC")
    ended_at: str | None = Field(description="ISO 8601 UTC; null while monitoring")
    window_end: str | None = Field(description="end of the last analysis window (ISO 8601 UTC)")
    verdict_at: str | None = Field(description="when the current verdict was reached (ISO 8601 UTC)")
    policy: dict[str, Any] = Field(description="the complete verdict policy: settings' defaults and overrides")


class TrafficStep(BaseModel):
    """A step of a canary's traffic share."""

    percentage: float | None
    at: str = Field(description="ISO 8601 UTC")
    actor: str | None = Field(description="the API key id that made the step")


class _CanaryHead(BaseModel):
    """The canary's own fields, first in its status (a base class: pydantic puts base fields first)."""

    canary_id: str
    current_traffic_percentage: float


class CanaryStatusReport(AnalysisStatus, _CanaryHead):
    """``GET /v1/ml/deploy/canary/{canary_id}/status``: the seed's fields, the evidence, each compared metric's
    anytime-valid interval, the verdict with its reason and numbers."""

    monitoring_duration_minutes: float | None
    auto: bool = Field(description="the verdicts are followed automatically")
    steps: list[TrafficStep] = Field(description="the traffic shares, oldest first")


class CanaryTrafficIncreased(CanaryStatusReport):
    """``POST /v1/ml/deploy/canary/{canary_id}/increase-traffic``: the canary's status after the step."""

    updated_at: str = Field(description="when the traffic share changed (ISO 8601 UTC)")


class _ShadowHead(BaseModel):
    """The shadow's own fields, first in its status (a base class: pydantic puts base fields first)."""

    shadow_id: str
    sample_percentage: float | None = Field(description="share of production's requests the shadow also scores")
    current_traffic_percentage: float = Field(description="always 0: a shadow's answers are never served")


class ShadowStatusReport(AnalysisStatus, _ShadowHead):
    """``GET /v1/ml/deploy/shadow/{shadow_id}/status``: the shadow model against production on the same requests."""


class ShadowStarted(BaseModel):
    """``POST /v1/ml/deploy/shadow/start`` (202): production's requests are mirrored to the model."""

    shadow_id: str
    model_id: str
    sample_percentage: float | int = Field(description="as requested (the integer 100 when it was not given)")
    status: str = Field(description="always 'monitoring'")
    started_at: str = Field(description="ISO 8601 UTC")
    baseline_model_id: str = Field(description="the production model the shadow is compared with")


class ShadowStopped(BaseModel):
    """``POST /v1/ml/deploy/shadow/{shadow_id}/stop``."""

    shadow_id: str
    status: str = Field(description="always 'stopped'")
    stopped_at: str = Field(description="ISO 8601 UTC")


class CanaryRolledBack(BaseModel):
    """``POST /v1/ml/deploy/canary/{canary_id}/rollback``: the canary ended without being promoted."""

    canary_id: str
    status: str = Field(description="always 'rolled_back'")
    production_model_id: str | None = Field(description="the model serving all traffic now")
    rolled_back_at: str = Field(description="ISO 8601 UTC")


class ProductionDeployment(BaseModel):
    """``POST /v1/ml/deploy/production``: the model serves 100% of the traffic."""

    model_id: str
    environment: str = Field(description="always 'production'")
    traffic_percentage: int = Field(description="always 100")
    deployed_at: str = Field(description="ISO 8601 UTC")
    previous_model_id: str | None = Field(description="the production model it replaced (now archived)")
    canary_id: str | None = Field(description="the canary that was promoted, if any")


class EmergencyRollback(BaseModel):
    """``POST /v1/ml/deploy/rollback/emergency``: the previous production model is restored."""

    rolled_back_to: str | None = Field(description="the production model now")
    reason: str
    rolled_back_at: str = Field(description="ISO 8601 UTC")
    rolled_back_from: str | None = Field(description="the model rolled back")
    canary_id: str | None = Field(description="the canary that was ended, if any")


class VersionRollback(BaseModel):
    """``POST /v1/ml/deploy/rollback``: the model rolled back to, now in production."""

    model_id: str
    model_name: str | None
    version: str | None
    model_type: str | None
    status: str = Field(description="the model's registry status")
    metrics: dict[str, Any] | None = Field(description="hold-out metrics measured at training time")
    environment: str = Field(description="always 'production'")
    traffic_percentage: int = Field(description="always 100")
    reason: str
    rolled_back_at: str = Field(description="ISO 8601 UTC")
    rolled_back_from: str | None = Field(description="the model rolled back")


class DeployHistoryEntry(BaseModel):
    """One deployment step of the audit trail."""

    event_id: str = Field(description="the deploy.events event id")
    action: DeployAction
    model_id: str | None
    actor: str | None = Field(description="the API key id that made the step")
    time: str = Field(description="ISO 8601 UTC")
    reason: str | None
    canary_id: str | None
    shadow_id: str | None
    traffic_percentage: float | None = Field(description="the canary's traffic share after the step")
    sample_percentage: float | None = Field(description="the shadow's sample share")
    changes: list[ModelChange] = Field(description="model status changes made by the step")
    metrics: dict[str, Any] | None = Field(description="metric snapshot at the moment of the step")
    production_model_id: str | None = Field(description="the production model after the step")
    deployment_version: int = Field(description="the family's deployment version after the step")


class DeployHistory(BaseModel):
    """``GET /v1/ml/deploy/history``: every deployment change, newest first."""

    history: list[DeployHistoryEntry]
    count: int


class ScoreRecords(BaseModel):
    """``tabular.predict`` request body: the records to score, in order."""

    records: list[PredictRecord] = Field(min_length=1, max_length=MAX_PREDICT_BATCH)


class ScoredRecord(BaseModel):
    """One scored record as the prediction worker answers it."""

    prediction_id: str = Field(description="give it to /v1/ml/feedback with the true label")
    model_id: str | None = Field(description="the model that scored the record")
    arm: str = Field(description="baseline (production) or canary")
    canary_id: str | None
    routing_key: str | None
    score: float | None = Field(description="fraud/anomaly score; null if the prediction failed")
    label: int | None = Field(description="predicted 0/1; null if the prediction failed")
    error: str | None = Field(description="why the prediction failed; null otherwise")
    worker_ms: float = Field(description="scoring time in the prediction worker")


class ScoredRecords(BaseModel):
    """``tabular.predict`` result: one scored record per record, in order."""

    predictions: list[ScoredRecord]


TABULAR_PREDICT = RpcKind("tabular.predict", ScoreRecords, ScoredRecords)


class Prediction(ScoredRecord):
    """One scored record."""

    latency_ms: float = Field(description="round trip from the API to the worker and back")


class PredictionBatch(BaseModel):
    """``POST /v1/ml/predict`` with ``records``: one prediction per record, in order."""

    predictions: list[Prediction]
    count: int
    latency_ms: float = Field(description="round trip from the API to the worker and back")


class FeedbackAccepted(BaseModel):
    """``POST /v1/ml/feedback`` (202): the labels of known predictions were published."""

    accepted: int = Field(description="labels published on predict.feedback")
    unknown: list[str] = Field(description="prediction ids not found (batch form only; the single form answers 404)")
    unknown_count: int
    received_at: str = Field(description="ISO 8601 UTC")


document_zero_bounds(globals())
