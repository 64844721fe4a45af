"""Lotto 6/45 (seed 003): API bodies, the draw event and the machine (호기) label rules.

The machine is validated by the routes (``parse_machine_type``) rather than by pydantic, so an
unknown machine answers 400 ``INVALID_MACHINE_TYPE`` with the seed's message instead of a 422.
The same rule lives in ``ml.lotto.draws.parse_machine``; the API may not import ``ml``, so it is
repeated here (the e2e tests check that both accept and reject the same values)."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.common import JsonFloat, JsonInt, document_zero_bounds
from schemas.envelope import Payload
from schemas.rpc import NoBody, RpcKind

MACHINES: Final[tuple[int, ...]] = (1, 2, 3)
MACHINE_LABELS: Final[tuple[str, ...]] = tuple(f"{m}호기" for m in MACHINES)
INVALID_MACHINE_MESSAGE: Final = f"올바른 호기를 선택하세요. 가능한 값: {', '.join(MACHINE_LABELS)}"
MODEL_TYPES: Final[tuple[str, ...]] = ("pytorch_transformer", "sklearn_ensemble", "enhanced_predictor")
ALGORITHMS: Final[tuple[str, ...]] = ("basic", "enhanced", "premium")

DRAW_RECORDED: Final = "modelbus.lotto.draw.recorded"
"""Event type on ``lotto.draws``: subject = ``str(round)``, sequence 1 (a round is recorded once)."""

_MACHINE_RE = re.compile(r"^\s*([0-9]+)\s*(?:호기|호)?\s*$")

MACHINE_TYPE_PATTERN: Final = r"^\s*0*[1-3]\s*(호기|호)?\s*$"
"""``parse_machine_type``'s rule for text, as a JSON-schema pattern (documented only: the route checks, so that an
unknown machine is the seed's 400 ``INVALID_MACHINE_TYPE``; text with ``%`` escapes is also decoded first)"""
MACHINE_TYPE_PARAM: Final[dict[str, Any]] = {"pattern": MACHINE_TYPE_PATTERN, "examples": list(MACHINE_LABELS)}
"""``schema_extra`` of a ``machine_type`` query or path parameter"""
MACHINE_TYPE_FIELD: Final[dict[str, Any]] = {
    "type": ["string", "integer"],
    "pattern": MACHINE_TYPE_PATTERN,
    "minimum": 1,
    "maximum": 3,
    "examples": ["1호기", "2호기", "3호기", 1],
}
"""``json_schema_extra`` of a ``machine_type`` body field: a label (``"2호기"``, ``"2"``) or the number 1-3"""

LottoModelType = Literal["pytorch_transformer", "sklearn_ensemble", "enhanced_predictor"]
Algorithm = Literal["basic", "enhanced", "premium"]
EnsembleMethod = Literal["weighted_voting", "stacking", "blending"]


def parse_machine_type(value: object) -> int | None:
    """1, 2 or 3 for ``"1호기"``, ``"1"``, ``1`` or URL-encoded ``"1%ED%98%B8%EA%B8%B0"``; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in MACHINES else None
    if isinstance(value, str):
        text = urllib.parse.unquote(value) if "%" in value else value
        match = _MACHINE_RE.match(text)
        if match is not None and int(match.group(1)) in MACHINES:
            return int(match.group(1))
    return None


def machine_as_text(value: Any) -> Any:
    """A ``machine_type`` body value given as a number (``2``, or ``2.0``: JSON has one number type) as its text,
    which ``parse_machine_type`` reads; anything else unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int) else value


def machine_label(machine: int) -> str:
    return f"{machine}호기"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


CONFIDENCE_SCORE_DESCRIPTION: Final = (
    "0.5 = no different from a uniform random set. Otherwise 1/(1+exp(-w*LLR)): LLR is the set's log-likelihood "
    "ratio under the model's per-number probabilities against uniform (6/45 each), and w in [0, 1] is the model's "
    "held-out evidence: the lower end of the 95% interval of its log-likelihood gain per draw over the uniform "
    "baseline on draws it had not seen, divided by the gain it claims; 0 (every score 0.5) when no gain is shown. "
    "A model score, NOT a chance of winning: every set has the same 1/8,145,060 chance. See docs/lotto.md."
)
CONFIDENCE_THRESHOLD_DESCRIPTION: Final = (
    "minimum confidence_score of a returned set, on the same scale: <= 0.5 admits every set; above 0.5 a set must "
    "be that much more likely under the model's evidence-weighted likelihood ratio (0.7: at least 0.7/0.3 = 2.33 "
    "times as likely as under uniform). When no set can reach it, sets are returned flagged below_threshold and "
    "metadata.threshold_reachable is false."
)


class PredictionSet(BaseModel):
    """One generated set (``POST /api/predictions/generate``; the ensemble adds ``below_threshold``)."""

    set_number: int
    numbers: list[int] = Field(description="six distinct numbers 1–45, sorted")
    confidence_score: float = Field(ge=0.0, le=1.0, description=CONFIDENCE_SCORE_DESCRIPTION)
    algorithm_used: str
    explanation: list[str] = Field(min_length=1, description="every line is computed from this set")


class EnsembleSet(PredictionSet):
    below_threshold: bool = Field(False, description="confidence_score < confidence_threshold")


class PredictionResponse(BaseModel):
    """``POST /api/predictions/generate`` (seed 003 1.1) as answered."""

    request_id: str
    machine_type: str
    predictions: list[PredictionSet]
    metadata: dict[str, Any] = Field(
        description="algorithm, analysis_window, model_version, features_used, draws_analysed, …, "
        "confidence_score_definition and confidence_evidence (the held-out record the scores are weighted by)"
    )
    generated_at: str


class EnsembleResponse(BaseModel):
    """``POST /api/ensemble/predictions/`` (seed 003 2.1) as answered."""

    request_id: str
    machine_type: str
    predictions: list[EnsembleSet]
    metadata: dict[str, Any] = Field(
        description="models, model_weights, model_metrics, confidence_threshold, threshold_met, threshold_reachable, "
        "max_confidence_score, confidence_evidence (the combination's held-out record), …"
    )
    generated_at: str


class PredictionRequest(_Body):
    """``POST /api/predictions/generate`` (seed 003 1.1); ``machine_type`` is checked by the route."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"machine_type": "1호기", "sets_count": 5, "algorithm": "enhanced", "analysis_window": 50}]
        }
    )  # the seed's example

    machine_type: str = Field(
        description="로또 추첨기 호기 선택: 1호기, 2호기, 3호기 (1, 2, 3 also accepted)",
        json_schema_extra={**MACHINE_TYPE_FIELD},
    )
    sets_count: JsonInt = Field(5, ge=1, le=20, description="생성할 번호 세트 개수 (1-20)")
    algorithm: Algorithm = Field("enhanced", description="예측 알고리즘 선택: basic, enhanced, premium")
    analysis_window: JsonInt = Field(50, ge=10, le=100, description="분석 대상 회차 수 (10-100)")

    @field_validator("machine_type", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return machine_as_text(value)


class EnsemblePredictionRequest(_Body):
    """``POST /api/ensemble/predictions/`` (seed 003 2.1)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "machine_type": "2호기",
                    "sets_count": 10,
                    "ensemble_method": "weighted_voting",
                    "models": ["pytorch_transformer", "sklearn_ensemble", "enhanced_predictor"],
                }
            ]
        }
    )  # the seed's example

    machine_type: str = Field(description="1호기, 2호기, 3호기", json_schema_extra={**MACHINE_TYPE_FIELD})
    sets_count: JsonInt = Field(5, ge=1, le=20)
    ensemble_method: EnsembleMethod = "weighted_voting"
    models: list[str] = Field(
        default_factory=lambda: ["pytorch_transformer", "sklearn_ensemble"],
        min_length=1,
        description=f"members, any of {', '.join(MODEL_TYPES)}",
        json_schema_extra={"items": {"type": "string", "enum": list(MODEL_TYPES)}},
    )
    confidence_threshold: JsonFloat = Field(0.7, ge=0.0, le=1.0, description=CONFIDENCE_THRESHOLD_DESCRIPTION)

    @field_validator("machine_type", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return machine_as_text(value)

    @field_validator("models")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in MODEL_TYPES]
        if unknown:
            raise ValueError(f"unknown models {unknown}; valid: {', '.join(MODEL_TYPES)}")
        return list(dict.fromkeys(value))


class LottoTrainRequest(_Body):
    """``POST /api/models/train``: train one ensemble member on one machine's draws."""

    machine_type: str = Field(description="1호기, 2호기, 3호기", json_schema_extra={**MACHINE_TYPE_FIELD})
    model_type: LottoModelType
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="hyperparameters of the member (see docs/lotto.md), checked per model_type by the API; omitted "
        "ones take their defaults",
    )

    @field_validator("machine_type", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return machine_as_text(value)


class DrawRecorded(Payload):
    """One draw recorded (``lotto.draws``, key = round). ``synthetic`` is true only for generated demo draws."""

    round: int = Field(ge=1)
    date: dt.date
    numbers: list[int] = Field(min_length=6, max_length=6)
    bonus: int = Field(ge=1, le=45)
    machine: int = Field(ge=1, le=3)
    synthetic: bool = False
    source: str = Field("api", description="api (POST /api/draws), demo, …")
    import_id: str | None = None
    imported_by: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# response bodies: draws


class LottoDrawImport(BaseModel):
    """``POST /api/draws``: what was imported (all rows, or nothing and a 422)."""

    import_id: str = Field(description="correlation id of the lotto.draws events of this import")
    imported: int = Field(description="draws recorded")
    first_round: int = Field(description="round of the first draw in the request's order")
    last_round: int = Field(description="round of the last draw in the request's order")
    by_machine: dict[str, int] = Field(description="draws imported per machine (1호기, 2호기, 3호기)")
    synthetic: bool = Field(description="always false: imported draws are real results")
    recorded_at: str = Field(description="time of the events, ISO 8601 UTC")


class LottoDraw(BaseModel):
    """One recorded draw."""

    round: int
    date: str = Field(description="draw date, YYYY-MM-DD")
    numbers: list[int] = Field(description="the six main numbers")
    bonus: int
    machine: int = Field(description="1, 2 or 3")
    machine_type: str = Field(description="1호기, 2호기 or 3호기")
    synthetic: bool = Field(description="true for generated demo draws (modelbus demo), not real results")


class LottoDrawList(BaseModel):
    """``GET /api/draws``: recorded draws, newest first."""

    machine_type: str | None = Field(description="the machine filtered on; null for all machines")
    draws: list[LottoDraw]
    count: int = Field(description="draws in this answer (at most limit)")
    total: int = Field(description="draws recorded (of the machine when filtered)")
    synthetic_draws: int = Field(description="synthetic demo draws among total")
    note: str | None = Field(description="a warning when synthetic demo draws are recorded; null otherwise")


# ---------------------------------------------------------------------------------------------------------------
# response bodies: statistics and backtests (the serving worker's ``ml.lotto`` results, as answered)


class LottoAnalysisPeriod(BaseModel):
    """The draws analysed."""

    total_rounds: int = Field(description="draws analysed (fewer than requested when the machine has fewer)")
    start_round: int = Field(description="round of the first draw analysed")
    end_round: int = Field(description="round of the last draw analysed")


class LottoNumberFrequency(BaseModel):
    """How often each number was drawn in the window (ties: smaller number first)."""

    most_frequent: list[int]
    least_frequent: list[int]
    frequency_distribution: dict[str, float] = Field(
        description="per number 1–45: appearances / draws analysed (uniform expectation 6/45 = 0.1333)"
    )


class LottoPatternAnalysis(BaseModel):
    """Averages of set patterns over the window (compare with ``random_baseline``)."""

    avg_odd_count: float
    avg_even_count: float
    avg_high_count: float = Field(description="numbers >= 23")
    avg_low_count: float
    avg_ac_value: float = Field(description="arithmetic complexity: distinct differences - 5")
    avg_last_digit_sum: float
    avg_total_sum: float


class LottoBaselineTest(BaseModel):
    """The one test of a backtest against the random baseline."""

    statistic: str
    test: str
    level: float = Field(description="significance level")
    baseline: float = Field(description="expected mean matches of a uniformly random set (0.8)")
    difference: float = Field(description="observed mean matches - baseline")
    difference_ci95: tuple[float, float]
    p_value: float | None = Field(description="null with fewer than two origins")
    rejects_baseline: bool


class LottoPerformanceMetrics(BaseModel):
    """``performance_metrics`` of the machine analysis: a backtest of the generator beside the random baseline."""

    algorithm: str
    rounds_evaluated: int
    sets_per_round: int
    sets_evaluated: int
    mean_matches: float = Field(description="mean matched main numbers per set")
    mean_matches_ci95: tuple[float, float]
    mean_matches_random_baseline: float
    hit_rate_3plus: float = Field(description="share of sets with 3 or more matches")
    hit_rate_3plus_ci95: tuple[float, float]
    hit_rate_3plus_random_baseline: float
    baseline_test: LottoBaselineTest
    baseline_within_ci: bool = Field(description="the random baseline lies in mean_matches_ci95")
    prediction_accuracy: float = Field(description="mean matches / 6: share of generated numbers that were drawn")
    prediction_accuracy_random_baseline: float = Field(description="6/45")
    confidence_correlation: float | None = Field(
        description="Spearman correlation of confidence_score and matches; null when the scores are constant or "
        "fewer than 20 sets were evaluated"
    )
    differentiation_score: float | None = Field(
        description="mean Jensen-Shannon distance between this machine's number model and the other machines'"
    )
    note: str


class LottoDataSource(BaseModel):
    """Whether the analysed window holds synthetic demo draws."""

    draws_analysed: int
    synthetic_draws: int
    real_draws: int
    note: str


class LottoMachineAnalysis(BaseModel):
    """``GET /api/statistics/machine-analysis/{machine_type}`` (seed 003 3.1) as answered."""

    machine_type: str | None
    analysis_period: LottoAnalysisPeriod
    number_frequency: LottoNumberFrequency
    pattern_analysis: LottoPatternAnalysis
    random_baseline: dict[str, float] = Field(description="exact expectations of the averages for uniform draws")
    requested_rounds: int
    performance_metrics: LottoPerformanceMetrics | None = Field(
        description="null when the machine has fewer than two draws (nothing to backtest)"
    )
    data_source: LottoDataSource


class LottoBacktest(BaseModel):
    """``GET /api/statistics/backtest``: a rolling-origin backtest beside the exact random baseline."""

    machine_type: str
    algorithm: str
    rounds_requested: int
    rounds_evaluated: int
    skipped_origins: int = Field(description="origins without enough earlier draws to generate from")
    first_origin_round: int | None
    last_origin_round: int | None
    sets_per_round: int
    sets_evaluated: int
    mean_matches: float = Field(description="mean matched main numbers per set")
    mean_matches_ci95: tuple[float, float]
    mean_matches_random_baseline: float
    hit_rate_3plus: float = Field(description="share of sets with 3 or more matches")
    hit_rate_3plus_ci95: tuple[float, float]
    hit_rate_3plus_random_baseline: float
    match_histogram: dict[str, int] = Field(description="sets per number of matches 0–6")
    match_histogram_random_baseline: dict[str, float] = Field(description="exact shares for a uniformly random set")
    confidence_correlation: float | None = Field(
        description="Spearman correlation of confidence_score and matches; null when undefined"
    )
    baseline_test: LottoBaselineTest
    baseline_within_ci: bool = Field(description="the random baseline lies in mean_matches_ci95")
    analysis_window: int
    method: str
    note: str


# ---------------------------------------------------------------------------------------------------------------
# response bodies: training and registry


class LottoTrainAccepted(BaseModel):
    """``POST /api/models/train`` (202): the training command is on Kafka."""

    job_id: str
    status: str = Field(description="started")
    model_type: str
    machine_type: str
    draws: int = Field(description="draws of the machine when the job was accepted")
    parameters: dict[str, Any] = Field(description="the member's hyperparameters with defaults, as validated")
    estimated_duration_minutes: float = Field(description="mean of the last 10 completed jobs of this member type")
    started_at: str


class LottoJobStatus(BaseModel):
    """``GET /api/models/train/{job_id}``: a lotto training job from the job projection."""

    job_id: str
    status: str = Field(description="started, running, completed, failed or cancelled")
    model_type: str
    machine_type: str | None
    model_id: str | None = Field(description="the registered model once completed")
    progress: float = Field(description="percent, 0–100")
    metrics: dict[str, Any] | None = Field(description="hold-out metrics beside the random baseline once completed")
    holdout: dict[str, Any] | None = Field(description="the held-out draws and the member's figures on them")
    baseline: dict[str, Any] | None = Field(description="the uniform predictor's figures on the same draws")
    baseline_within_ci: bool | None
    confidence_evidence: dict[str, Any] | None = Field(
        description="the held-out record the member's confidence scores are weighted by"
    )
    draws: int | None = Field(description="draws trained on")
    parameters: dict[str, Any] | None = Field(description="the hyperparameters requested (without machine)")
    attempts: int | None
    started_at: str
    completed_at: str | None
    duration_minutes: float | None
    error: str | None = Field(description="why the job failed or was cancelled; null otherwise")


class LottoModel(BaseModel):
    """A registered lotto ensemble member."""

    model_id: str
    model_name: str
    model_type: str
    machine_type: str | None
    version: str
    status: str
    metrics: dict[str, Any] = Field(description="hold-out metrics beside the random baseline")
    lineage: dict[str, Any] = Field(description="job, machine, dataset, hyperparameters, library versions, hold-out")
    artifact_sha256: str | None
    artifact_bytes: int | None
    trained_at: str | None


class LottoModelList(BaseModel):
    """``GET /api/models``: registered lotto members, newest first."""

    models: list[LottoModel]
    count: int


# ---------------------------------------------------------------------------------------------------------------
# response bodies: monitoring (GET /api/monitoring/metrics and /api/monitoring/health)


# -- request/reply with the serving workers (``RpcKind``) -----------------------------------------------------

Machine = Literal[1, 2, 3]


class LottoJobSpec(BaseModel):
    """The ``spec`` of a lotto ``TrainRequested``: the machine and the member's validated parameters."""

    machine: Machine
    parameters: dict[str, Any] = Field(default_factory=dict)


class StatisticsBody(_Body):
    machine: Machine
    rounds: int = Field(50, ge=1, le=10000)


class BacktestBody(_Body):
    machine: Machine
    algorithm: Algorithm = "enhanced"
    rounds: int = Field(100, ge=1, le=500)
    sets_per_round: int = Field(5, ge=1, le=20)
    analysis_window: int = Field(50, ge=10, le=100)


class GenerateBody(PredictionRequest):
    machine: Machine


class EnsembleBody(EnsemblePredictionRequest):
    machine: Machine


class GeneratedSets(BaseModel):
    """``lotto.generate`` / ``lotto.ensemble`` result: the response but for the API's stamps (request id, time)."""

    machine_type: str
    predictions: list[dict[str, Any]]
    metadata: dict[str, Any]


class LottoWorkerStatus(BaseModel):
    """``lotto.status`` result: what one serving worker holds."""

    worker_id: str
    models_loaded: list[str]
    models: list[dict[str, Any]]
    memory_usage_mb: float
    last_prediction: str | None
    draws_in_memory: int
    cache: dict[str, Any]


LOTTO_STATISTICS = RpcKind("lotto.statistics", StatisticsBody, LottoMachineAnalysis)
LOTTO_BACKTEST = RpcKind("lotto.backtest", BacktestBody, LottoBacktest)
LOTTO_GENERATE = RpcKind("lotto.generate", GenerateBody, GeneratedSets)
LOTTO_ENSEMBLE = RpcKind("lotto.ensemble", EnsembleBody, GeneratedSets)
LOTTO_STATUS = RpcKind("lotto.status", NoBody, LottoWorkerStatus)


document_zero_bounds(globals())
