"""Number-set generation for ``POST /api/predictions/generate``.

Over the machine's last ``analysis_window`` draws (fewer if fewer exist):

* ``basic``: uniformly random sets (every set equally likely). Needs no history.
* ``enhanced``: six numbers drawn without replacement ∝ per-number weights from the window's
  smoothed frequency with the machine strategy (see :mod:`ml.lotto.strategies`):
  1호기 hot numbers ×1.15, 2호기 balanced sets ×1.20, 3호기 odd numbers ×1.12.
* ``premium``: ``enhanced`` restricted to sets that pass all three pattern filters:
  AC value ≥ 7; total sum within the central 80 % (10th–90th percentile) of the machine's historical
  sums (all of its supplied draws when there are at least 30, else the exact uniform range 99–177);
  2–4 odd numbers.

Sets in one response are distinct and sorted. ``confidence_score`` (see :mod:`ml.lotto.confidence`) is 0.5
for a set no different from a uniform random one and moves away from 0.5 only as far as the frequency model's
held-out record (rolling origin over the machine's draws) supports; ``basic`` scores every set 0.5. It is never
a chance of winning. Every explanation line is computed from the set.
Draws are uniform random: no algorithm here changes the odds of any set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml.lotto.confidence import (
    SCORE_DEFINITION,
    ConfidenceEvidence,
    confidence_scores,
    frequency_evidence,
    no_evidence,
)
from ml.lotto.draws import (
    NUMBERS_PER_DRAW,
    TOTAL_COMBINATIONS,
    Draw,
    draws_for_machine,
    machine_label,
    parse_machine,
)
from ml.lotto.sampling import make_rng, sample_distinct_sets
from ml.lotto.statistics import (
    EmptyHistoryError,
    ac_value,
    high_count,
    odd_count,
    uniform_sum_quantile,
)
from ml.lotto.strategies import (
    BALANCE_BOOST,
    HOT_BOOST,
    HOT_COUNT,
    ODD_BOOST,
    STRATEGIES,
    NumberModel,
    ac_values,
    balanced,
    number_model,
    odd_counts,
    set_sums,
    uniform_model,
)
from schemas.lotto import PredictionSet

Algorithm = Literal["basic", "enhanced", "premium"]
MODEL_VERSION: Final = "modelbus-lotto-1.0.0"
BASIC_ALGORITHM_NAME: Final = "basic_uniform_random"
PREMIUM_SUFFIX: Final = "_pattern_filtered"
PREMIUM_MIN_AC: Final = 7
PREMIUM_ODD_RANGE: Final = (2, 4)
PREMIUM_SUM_QUANTILES: Final = (0.10, 0.90)
PREMIUM_MIN_HISTORY_FOR_SUMS: Final = 30
DISCLAIMER_LINE: Final = f"ℹ️ 추첨은 균등 무작위: 모든 조합의 1등 확률은 동일하게 1/{TOTAL_COMBINATIONS:,}"


class GenerateRequest(BaseModel):
    """Body of ``POST /api/predictions/generate`` (machine accepted as 1호기, "1", 1 or URL-encoded)."""

    model_config = ConfigDict(extra="forbid")

    machine_type: str = Field(description="추첨기 호기: 1호기, 2호기, 3호기")
    sets_count: int = Field(default=5, ge=1, le=20)
    algorithm: Algorithm = "enhanced"
    analysis_window: int = Field(default=50, ge=10, le=100)

    @field_validator("machine_type", mode="before")
    @classmethod
    def _machine(cls, value: str | int) -> str:
        return machine_label(value)


class PredictionMetadata(BaseModel):
    algorithm: str
    analysis_window: int
    model_version: str
    features_used: list[str]
    draws_analysed: int = Field(description="machine draws actually in the window (≤ analysis_window)")
    window_start_round: int | None = None
    window_end_round: int | None = None
    strategy: str | None = None
    premium_filter: dict[str, float | int] | None = None
    confidence_score_definition: str = SCORE_DEFINITION
    confidence_evidence: ConfidenceEvidence | None = Field(
        default=None, description="the held-out record the scores are weighted by (weight 0: every score 0.5)"
    )


class GenerationResult(BaseModel):
    """``machine_type``, ``predictions`` and ``metadata`` of the seed response; the API adds
    ``request_id`` and ``generated_at``."""

    machine_type: str
    predictions: list[PredictionSet]
    metadata: PredictionMetadata


class PremiumFilter:
    """AC ≥ 7, sum in [sum_low, sum_high], 2–4 odd numbers (vectorised over an (N, 6) array)."""

    def __init__(self, sum_low: int, sum_high: int, sums_source: str) -> None:
        self.sum_low = sum_low
        self.sum_high = sum_high
        self.sums_source = sums_source

    @classmethod
    def from_history(cls, history: Sequence[Draw]) -> PremiumFilter:
        if len(history) >= PREMIUM_MIN_HISTORY_FOR_SUMS:
            sums = np.array([sum(d.numbers) for d in history], dtype=np.float64)
            low, high = np.quantile(sums, PREMIUM_SUM_QUANTILES)
            return cls(math.floor(low), math.ceil(high), f"historical ({len(history)} draws)")
        low_q, high_q = PREMIUM_SUM_QUANTILES
        return cls(uniform_sum_quantile(low_q), uniform_sum_quantile(high_q), "uniform (exact)")

    def __call__(self, sets: np.ndarray) -> np.ndarray:
        sums = set_sums(sets)
        odd = odd_counts(sets)
        lo, hi = PREMIUM_ODD_RANGE
        return (
            (ac_values(sets) >= PREMIUM_MIN_AC)
            & (sums >= self.sum_low)
            & (sums <= self.sum_high)
            & (odd >= lo)
            & (odd <= hi)
        )

    def describe(self) -> dict[str, float | int]:
        return {
            "min_ac": PREMIUM_MIN_AC,
            "sum_low": self.sum_low,
            "sum_high": self.sum_high,
            "min_odd": PREMIUM_ODD_RANGE[0],
            "max_odd": PREMIUM_ODD_RANGE[1],
        }


def _features(algorithm: Algorithm, machine: int) -> list[str]:
    if algorithm == "basic":
        return ["uniform_random"]
    features = ["machine_specific_patterns", "number_frequency", "weighted_frequency", STRATEGIES[machine].feature]
    if machine == 2:
        features += ["odd_even_pattern", "high_low_distribution"]
    if algorithm == "premium":
        features += ["ac_value", "total_sum_range", "odd_even_pattern"]
    return list(dict.fromkeys(features))


def score_line(confidence: float, evidence: ConfidenceEvidence) -> str:
    """The explanation line of a set's ``confidence_score`` (generators and ensemble)."""
    if not evidence.shown:
        why = "검증 근거 없음 → 50% = 균등 무작위 세트와 같음"
    else:
        why = f"50% = 균등 무작위와 같음, 검증 근거 가중치 {evidence.weight:.2f}"
    return f"⚡ 모델 점수: {confidence * 100:.1f}% (당첨 확률 아님 — {why})"


def _explain(
    numbers: tuple[int, ...],
    *,
    algorithm: Algorithm,
    machine: int,
    model: NumberModel,
    window_size: int,
    confidence: float,
    evidence: ConfidenceEvidence,
    premium: PremiumFilter | None,
) -> list[str]:
    label = machine_label(machine)
    odd = odd_count(numbers)
    high = high_count(numbers)
    if algorithm == "basic":
        return [
            f"🎲 {label} 균등 무작위 생성 (모든 조합이 같은 확률로 선택됨)",
            f"⚡ 모델 점수: {confidence * 100:.1f}% (당첨 확률 아님 — 균등 모델은 모든 세트에 같은 점수)",
            DISCLAIMER_LINE,
        ]
    strategy = STRATEGIES[machine]
    lines = [f"{strategy.emoji} {strategy.name} {label} 빈도 모델 기반 생성 ({strategy.adjustment})"]
    expected = window_size * NUMBERS_PER_DRAW / 45
    mean_count = float(np.mean([model.counts[n - 1] for n in numbers]))
    lines.append(
        f"📈 최근 {window_size}회 출현 빈도 반영 — 이 세트 번호의 평균 출현 {mean_count:.1f}회 "
        f"(번호당 기대 {expected:.1f}회)"
    )
    if machine == 1:
        hot_in_set = sum(1 for n in numbers if n in model.hot)
        lines.append(
            f"📊 고수 번호 가중치 적용 (빈도 상위 30% = {HOT_COUNT}개, ×{HOT_BOOST:.2f}) — "
            f"이 세트의 고빈도 번호 {hot_in_set}개"
        )
    elif machine == 2:
        ok = bool(balanced(np.array([numbers]))[0])
        verdict = f"균형 충족, ×{BALANCE_BOOST:.2f}" if ok else "균형 미충족, 가중 없음"
        lines.append(
            f"⚖️ 균형점수 가중 (홀·고 각 2~4개인 세트 ×{BALANCE_BOOST:.2f}) — 이 세트: 홀 {odd}/짝 {6 - odd}, "
            f"고 {high}/저 {6 - high} ({verdict})"
        )
    else:
        lines.append(f"🔢 홀수 가중 적용 (홀수 번호 ×{ODD_BOOST:.2f}) — 이 세트의 홀수 {odd}개")
    if premium is not None:
        lines.append(
            f"🧮 패턴 필터 통과: AC {ac_value(numbers)} (≥{PREMIUM_MIN_AC}), 합계 {sum(numbers)} "
            f"(범위 {premium.sum_low}–{premium.sum_high}), 홀수 {odd}개 (2~4)"
        )
    lines.append(score_line(confidence, evidence))
    lines.append(DISCLAIMER_LINE)
    return lines


def generate_sets(
    draws: Sequence[Draw],
    machine_type: str | int,
    *,
    sets_count: int = 5,
    algorithm: Algorithm = "enhanced",
    analysis_window: int = 50,
    rng: np.random.Generator | int | None = None,
    evidence: ConfidenceEvidence | None = None,
) -> GenerationResult:
    """Generate ``sets_count`` distinct sorted sets for ``machine_type`` from ``draws`` (any machines;
    only the machine's draws are used). ``rng``: a numpy Generator, a seed, or None. ``evidence`` (for the
    frequency model on these draws and window) is computed when not given.

    Raises :class:`~ml.lotto.draws.InvalidMachineType`, ``ValueError`` for out-of-range arguments and
    :class:`~ml.lotto.statistics.EmptyHistoryError` when ``enhanced``/``premium`` has no draws of the machine.
    """
    machine = parse_machine(machine_type)
    request = GenerateRequest(
        machine_type=str(machine), sets_count=sets_count, algorithm=algorithm, analysis_window=analysis_window
    )
    generator = make_rng(rng)
    history = draws_for_machine(draws, machine)
    window = history[-request.analysis_window :]

    premium: PremiumFilter | None = None
    if request.algorithm == "basic":
        model = uniform_model()
        name = BASIC_ALGORITHM_NAME
        evidence = no_evidence("uniform model: every set is equally likely")
    else:
        if not window:
            raise EmptyHistoryError(machine)
        model = number_model(window, machine)
        if evidence is None:
            evidence = frequency_evidence(history, machine, request.analysis_window)
        name = STRATEGIES[machine].algorithm_name
        if request.algorithm == "premium":
            premium = PremiumFilter.from_history(history)
            name += PREMIUM_SUFFIX

    set_factor = model.set_factors if model.balance_boost != 1.0 else None
    sets = sample_distinct_sets(
        model.weights,
        request.sets_count,
        generator,
        set_factor=set_factor,
        max_factor=model.max_set_factor,
        accept=premium,
    )
    scores = confidence_scores(np.array(sets), model.probabilities(), evidence)
    predictions = []
    for index, (numbers, score) in enumerate(zip(sets, scores, strict=True), start=1):
        confidence = round(float(score), 4)
        predictions.append(
            PredictionSet(
                set_number=index,
                numbers=list(numbers),
                confidence_score=confidence,
                algorithm_used=name,
                explanation=_explain(
                    numbers,
                    algorithm=request.algorithm,
                    machine=machine,
                    model=model,
                    window_size=len(window),
                    confidence=confidence,
                    evidence=evidence,
                    premium=premium,
                ),
            )
        )
    return GenerationResult(
        machine_type=machine_label(machine),
        predictions=predictions,
        metadata=PredictionMetadata(
            algorithm=name,
            analysis_window=request.analysis_window,
            model_version=MODEL_VERSION,
            features_used=_features(request.algorithm, machine),
            draws_analysed=len(window) if request.algorithm != "basic" else 0,
            window_start_round=window[0].round if window and request.algorithm != "basic" else None,
            window_end_round=window[-1].round if window and request.algorithm != "basic" else None,
            strategy=None if request.algorithm == "basic" else STRATEGIES[machine].name,
            premium_filter=None if premium is None else premium.describe(),
            confidence_evidence=evidence,
        ),
    )


def generate(request: GenerateRequest, draws: Sequence[Draw], *, rng: np.random.Generator | int | None = None) -> (
    GenerationResult
):
    """:func:`generate_sets` from a validated :class:`GenerateRequest`."""
    return generate_sets(
        draws,
        request.machine_type,
        sets_count=request.sets_count,
        algorithm=request.algorithm,
        analysis_window=request.analysis_window,
        rng=rng,
    )
