"""Tabular model deployments (``/v1/ml/deploy``), serving and canary analysis: API bodies and events.

* ``deploy.events``: :class:`DeploymentStep`, one per deployment change (staging, canary start, traffic
  increase, production, rollbacks, canary end). It carries the family's whole deployment state *after*
  the step (``state``), so the ``deployments`` projection is a copy of the latest one, and the audit
  fields (actor, reason, metric snapshot) that make the ``deploy_history`` document. Model status
  changes of the same step are :class:`schemas.rl.ModelStatusChanged` events on ``model.events``.
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

from schemas.common import UtcDatetime
from schemas.envelope import Payload

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
    target_percentage: float = Field(gt=0, le=100)


class RollbackRequest(Strict):
    model_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)


class PredictRecord(Strict):
    features: dict[str, float | int | bool | None]
    routing_key: str | None = Field(None, max_length=200)


class PredictRequest(Strict):
    """One record (``features`` [+ ``routing_key``]) or a batch (``records``, up to 1,000)."""

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
    canary_id: str
    model_id: str
    baseline_model_id: str
    percentage: float
    auto: bool = False


class ShadowState(BaseModel):
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
