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

from schemas.envelope import Payload

MACHINES: Final[tuple[int, ...]] = (1, 2, 3)
MACHINE_LABELS: Final[tuple[str, ...]] = tuple(f"{m}호기" for m in MACHINES)
INVALID_MACHINE_MESSAGE: Final = f"올바른 호기를 선택하세요. 가능한 값: {', '.join(MACHINE_LABELS)}"
MODEL_TYPES: Final[tuple[str, ...]] = ("pytorch_transformer", "sklearn_ensemble", "enhanced_predictor")
ALGORITHMS: Final[tuple[str, ...]] = ("basic", "enhanced", "premium")

DRAW_RECORDED: Final = "modelbus.lotto.draw.recorded"
"""Event type on ``lotto.draws``: subject = ``str(round)``, sequence 1 (a round is recorded once)."""

_MACHINE_RE = re.compile(r"^\s*([0-9]+)\s*(?:호기|호)?\s*$")

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

    machine_type: str = Field(description="로또 추첨기 호기 선택: 1호기, 2호기, 3호기 (1, 2, 3 also accepted)")
    sets_count: int = Field(5, ge=1, le=20, description="생성할 번호 세트 개수 (1-20)")
    algorithm: Algorithm = Field("enhanced", description="예측 알고리즘 선택: basic, enhanced, premium")
    analysis_window: int = Field(50, ge=10, le=100, description="분석 대상 회차 수 (10-100)")

    @field_validator("machine_type", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class EnsemblePredictionRequest(_Body):
    """``POST /api/ensemble/predictions/`` (seed 003 2.1)."""

    machine_type: str = Field(description="1호기, 2호기, 3호기")
    sets_count: int = Field(5, ge=1, le=20)
    ensemble_method: EnsembleMethod = "weighted_voting"
    models: list[str] = Field(
        default_factory=lambda: ["pytorch_transformer", "sklearn_ensemble"],
        min_length=1,
        description=f"members, any of {', '.join(MODEL_TYPES)}",
    )
    confidence_threshold: float = Field(0.7, ge=0.0, le=1.0, description=CONFIDENCE_THRESHOLD_DESCRIPTION)

    @field_validator("machine_type", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("models")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in MODEL_TYPES]
        if unknown:
            raise ValueError(f"unknown models {unknown}; valid: {', '.join(MODEL_TYPES)}")
        return list(dict.fromkeys(value))


class LottoTrainRequest(_Body):
    """``POST /api/models/train``: train one ensemble member on one machine's draws."""

    machine_type: str = Field(description="1호기, 2호기, 3호기")
    model_type: LottoModelType
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="hyperparameters of the member (see docs/lotto.md); validated by the worker"
    )

    @field_validator("machine_type", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


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
