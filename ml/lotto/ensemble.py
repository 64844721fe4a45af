"""Ensemble of fitted members for ``POST /api/ensemble/predictions/``.

Combining the members' per-number scores (each sums to 6, see :mod:`ml.lotto.models`):

* ``weighted_voting`` — soft voting: the weighted mean of the members' scores. Default weights are
  proportional to 1 / ``holdout_log_loss`` of each member (better held-out fit, more say); pass
  ``weights`` to override.
* ``stacking`` — a logistic-regression meta-learner on the logits of the members' scores, fit on the
  members' *held-out* scores (made before they saw those draws, stored at fit time) against what was
  drawn. :class:`StackingCombiner` follows the :mod:`ml.base` contract; fit on the fly when not given.
* ``blending`` — fixed-weight (default equal) average of the members' *rank* percentiles; the numbers
  are then ordered by that blended rank and the k-th ranked number receives the members' mean k-th
  largest score (rank-preserving, so the result stays as concentrated as the members are).

Then ``sets_count`` distinct sets are sampled ∝ the combined scores (as in the generators) and scored
with the same ``confidence_score`` (:mod:`ml.lotto.confidence`, never a chance of winning). Its evidence is
the *combination's* held-out record: the members' held-out scores on their common held-out rounds, combined
the same way (stacking: 5-fold cross-fitted over those rounds, so no round is scored by a meta-learner that
saw it), against what was drawn. No measured gain over the uniform baseline → every score is exactly 0.5.

``confidence_threshold`` is on that scale: a set passes when ``confidence_score ≥ threshold``, i.e. when the
evidence-weighted likelihood ratio ``w·LLR ≥ logit(threshold)`` (0.7 → the model, as far as its record
supports, finds the set at least 0.7/0.3 = 2.33 times as likely as uniform does). A threshold ≤ 0.5 admits
every set; above 0.5 it needs measured evidence. The highest score any set can reach is computed first
(``metadata.max_confidence_score``): if it is below the threshold nothing can pass, so no search is made
(``metadata.threshold_reachable`` false) and ``sets_count`` sets are sampled from the model as they come,
flagged ``below_threshold: true``. Otherwise candidates are drawn in batches until ``sets_count`` distinct
sets pass or ``max_candidates`` have been drawn, and a shortfall is filled with the best-scoring remaining
candidates (ties in the order drawn), flagged likewise. ``metadata.threshold_met`` is false whenever a set is
flagged. The response always holds ``sets_count`` sets.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ml.base import Params, ProgressCallback, Throttle
from ml.lotto.confidence import (
    SCORE_DEFINITION,
    ConfidenceEvidence,
    confidence_scores,
    evidence_from_holdout,
    max_log_likelihood_ratio,
    no_evidence,
    score_of,
)
from ml.lotto.draws import NUMBER_MAX, Draw, draws_for_machine, machine_label, parse_machine
from ml.lotto.generators import DISCLAIMER_LINE, MODEL_VERSION, score_line
from ml.lotto.models import MODEL_TYPES, LottoModel, normalise_scores, top_k
from ml.lotto.sampling import gumbel_top_k, make_rng
from schemas.lotto import CONFIDENCE_THRESHOLD_DESCRIPTION, EnsembleSet

EnsembleMethod = Literal["weighted_voting", "stacking", "blending"]
DEFAULT_MODELS: Final = ("pytorch_transformer", "sklearn_ensemble")
CROSS_FIT_FOLDS: Final = 5
_EPS: Final = 1e-6


class EnsembleRequest(BaseModel):
    """Body of ``POST /api/ensemble/predictions/`` (seed schema; machine also accepted as 1, "1", URL-encoded)."""

    model_config = ConfigDict(extra="forbid")

    machine_type: str
    sets_count: int = Field(default=5, ge=1, le=20)
    ensemble_method: EnsembleMethod = "weighted_voting"
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS), min_length=1)
    confidence_threshold: float = Field(default=0.7, ge=0.0, le=1.0, description=CONFIDENCE_THRESHOLD_DESCRIPTION)

    @field_validator("machine_type", mode="before")
    @classmethod
    def _machine(cls, value: str | int) -> str:
        return machine_label(value)

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in MODEL_TYPES]
        if unknown:
            raise ValueError(f"unknown models {unknown}; valid: {', '.join(MODEL_TYPES)}")
        return list(dict.fromkeys(value))


class EnsembleMetadata(BaseModel):
    """``model_weights``: normalised member weights (voting, blending) or the meta-learner's logit
    coefficients (stacking)."""

    algorithm: str
    ensemble_method: EnsembleMethod
    models: list[str]
    model_weights: dict[str, float]
    model_metrics: dict[str, dict[str, float]]
    confidence_threshold: float
    threshold_met: bool
    threshold_reachable: bool = Field(description="false when no set can reach the threshold (no search is made)")
    max_confidence_score: float = Field(description="the highest confidence_score any set can reach")
    sets_below_threshold: int
    candidates_evaluated: int
    model_version: str
    features_used: list[str]
    machine_draws_in_history: int
    confidence_score_definition: str = SCORE_DEFINITION
    confidence_evidence: ConfidenceEvidence


class EnsembleResult(BaseModel):
    """``machine_type``, ``predictions`` and ``metadata``; the API adds ``request_id`` and ``generated_at``."""

    machine_type: str
    predictions: list[EnsembleSet]
    metadata: EnsembleMetadata


# ---------------------------------------------------------------------------------------------------------------
# combining


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def rank_percentiles(scores: np.ndarray) -> np.ndarray:
    """Average-rank percentile of each number's score in [0, 1] (highest score = 1)."""
    return (rankdata(scores, method="average") - 1) / (NUMBER_MAX - 1)


def voting_weights(models: Mapping[str, LottoModel]) -> dict[str, float]:
    """Default soft-voting weights ∝ 1 / holdout_log_loss, normalised to sum 1."""
    raw = {name: 1.0 / max(_EPS, m.metrics.get("holdout_log_loss", 1.0)) for name, m in models.items()}
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def _normalised_weights(names: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        return {name: 1.0 / len(names) for name in names}
    missing = [n for n in names if n not in weights]
    if missing or any(weights[n] < 0 for n in names) or sum(weights[n] for n in names) <= 0:
        raise ValueError(f"weights must be non-negative, not all zero, and cover {list(names)}")
    total = sum(weights[n] for n in names)
    return {n: weights[n] / total for n in names}


class StackingParams(Params):
    C: float = Field(default=1.0, gt=0.0, description="inverse L2 regularisation of the meta-learner")


class StackingCombiner:
    """Logistic-regression meta-learner over member logits, fit on the members' held-out scores."""

    def __init__(self, params: StackingParams | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.params = params if isinstance(params, StackingParams) else StackingParams.model_validate(
            {**dict(params or {}), **kwargs}
        )
        self.members: list[str] = []
        self.coef: np.ndarray = np.zeros(0)
        self.intercept: float = 0.0
        self.metrics: dict[str, float] = {}

    def fit(self, models: Mapping[str, LottoModel], *, progress: ProgressCallback | None = None) -> Self:
        throttle = Throttle(progress)
        rounds, member_rows, targets = common_holdout(models)
        if not rounds:
            raise ValueError("stacking needs members evaluated on common held-out rounds: fit them on the same draws")
        self.fit_rows(member_rows, targets)
        self.metrics = {"rounds": float(len(rounds))}
        throttle(100.0, self.metrics)
        return self

    def fit_rows(self, member_rows: Mapping[str, np.ndarray], targets: np.ndarray) -> Self:
        """Fit on held-out rows: each member's (rounds, 45) scores and the (rounds, 45) drawn numbers."""
        names = list(member_rows)
        features = np.column_stack([_logit(np.asarray(member_rows[n])).reshape(-1) for n in names])
        meta = LogisticRegression(C=self.params.C, max_iter=1000)
        with threadpool_limits(1):
            meta.fit(features, np.asarray(targets).reshape(-1))
        self.members = names
        self.coef = meta.coef_[0].astype(np.float64)
        self.intercept = float(meta.intercept_[0])
        return self

    def predict(self, member_scores: Mapping[str, np.ndarray]) -> np.ndarray:
        if not self.members:
            raise RuntimeError("StackingCombiner is not fitted")
        features = np.column_stack([_logit(np.asarray(member_scores[name])) for name in self.members])
        probabilities = 1.0 / (1.0 + np.exp(-(features @ self.coef + self.intercept)))
        return normalise_scores(probabilities)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "kind": "lotto_stacking",
                "params": self.params.model_dump(),
                "members": self.members,
                "coef": self.coef.tolist(),
                "intercept": self.intercept,
                "metrics": self.metrics,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        payload = json.load(io.BytesIO(data))
        if payload.get("kind") != "lotto_stacking":
            raise ValueError("not a lotto stacking artifact")
        combiner = cls(payload["params"])
        combiner.members = list(payload["members"])
        combiner.coef = np.asarray(payload["coef"], dtype=np.float64)
        combiner.intercept = float(payload["intercept"])
        combiner.metrics = dict(payload["metrics"])
        return combiner


def common_holdout(models: Mapping[str, LottoModel]) -> tuple[list[int], dict[str, np.ndarray], np.ndarray]:
    """The held-out rounds every member scored (sorted), each member's scores on them and the drawn numbers."""
    names = list(models)
    common = set(models[names[0]].holdout_rounds)
    for name in names[1:]:
        common &= set(models[name].holdout_rounds)
    rounds = sorted(common)
    rows = {}
    for name in names:
        position = {r: i for i, r in enumerate(models[name].holdout_rounds)}
        rows[name] = np.asarray(models[name].holdout_scores)[[position[r] for r in rounds]]
    first = models[names[0]]
    position = {r: i for i, r in enumerate(first.holdout_rounds)}
    targets = np.asarray(first.holdout_targets)[[position[r] for r in rounds]]
    return rounds, rows, targets


def ensemble_evidence(
    models: Mapping[str, LottoModel],
    method: EnsembleMethod,
    *,
    weights: Mapping[str, float] | None = None,
    stacking_c: float = 1.0,
) -> ConfidenceEvidence:
    """The combination's held-out record (see the module doc); no common held-out rounds → no evidence."""
    rounds, member_rows, targets = common_holdout(models)
    names = list(models)
    if len(rounds) < 2:
        return no_evidence(f"ensemble {method}: the members share no held-out rounds")
    if method == "stacking":
        combined = np.empty_like(targets, dtype=np.float64)
        for fold in np.array_split(np.arange(len(rounds)), min(CROSS_FIT_FOLDS, len(rounds))):
            rest = np.setdiff1d(np.arange(len(rounds)), fold)
            meta = StackingCombiner(C=stacking_c).fit_rows({n: member_rows[n][rest] for n in names}, targets[rest])
            for i in fold:
                combined[i] = meta.predict({n: member_rows[n][i] for n in names})
        how = f"{CROSS_FIT_FOLDS}-fold cross-fitted meta-learner"
    else:
        combined = np.vstack(
            [combine_scores({n: member_rows[n][i] for n in names}, method, weights=weights) for i in range(len(rounds))]
        )
        how = "combined as served"
    return evidence_from_holdout(
        combined, targets, f"ensemble {method} ({how}) on the members' common held-out rounds {rounds[0]}–{rounds[-1]}"
    )


def combine_scores(
    member_scores: Mapping[str, np.ndarray],
    method: EnsembleMethod,
    *,
    weights: Mapping[str, float] | None = None,
    stacker: StackingCombiner | None = None,
) -> np.ndarray:
    """Combined 45 scores (sum 6) from the members' scores (see module docstring)."""
    names = list(member_scores)
    if not names:
        raise ValueError("no member scores to combine")
    if method == "weighted_voting":
        w = _normalised_weights(names, weights)
        return normalise_scores(sum(w[n] * np.asarray(member_scores[n]) for n in names))
    if method == "blending":
        w = _normalised_weights(names, weights)
        blended = sum(w[n] * rank_percentiles(np.asarray(member_scores[n])) for n in names)
        profile = np.mean([np.sort(np.asarray(member_scores[n]))[::-1] for n in names], axis=0)
        order = np.lexsort((np.arange(NUMBER_MAX), -np.asarray(blended)))
        combined = np.empty(NUMBER_MAX)
        combined[order] = profile
        return normalise_scores(combined)
    if method == "stacking":
        if stacker is None:
            raise ValueError("stacking needs a fitted StackingCombiner")
        return stacker.predict(member_scores)
    raise ValueError(f"unknown ensemble method {method!r}")


# ---------------------------------------------------------------------------------------------------------------
# generating


def ensemble_predict(
    models: Mapping[str, LottoModel],
    draws: Sequence[Draw],
    machine_type: str | int,
    *,
    sets_count: int = 5,
    method: EnsembleMethod = "weighted_voting",
    model_names: Sequence[str] | None = None,
    confidence_threshold: float = 0.7,
    weights: Mapping[str, float] | None = None,
    stacker: StackingCombiner | None = None,
    rng: np.random.Generator | int | None = None,
    batch: int = 512,
    max_candidates: int = 20_000,
) -> EnsembleResult:
    """Sets for ``machine_type`` from the fitted ``models`` named in ``model_names`` (default: all given).

    ``draws`` is the full history: each member reads it as it was trained (filtered to its own
    ``params.machine`` when set, all draws otherwise), so machine-specific scores come from members
    trained with ``params.machine``. Raises ``ValueError`` when a requested model is not provided or
    not fitted, or a given stacker was fit on other members.
    """
    request = EnsembleRequest(
        machine_type=str(parse_machine(machine_type)),
        sets_count=sets_count,
        ensemble_method=method,
        models=list(model_names or models),
        confidence_threshold=confidence_threshold,
    )
    machine = parse_machine(request.machine_type)
    missing = [n for n in request.models if n not in models or not models[n].fitted]
    if missing:
        raise ValueError(f"models not trained or not loaded: {missing}")
    chosen = {n: models[n] for n in request.models}
    history = draws_for_machine(draws, machine)
    member_scores = {n: m.predict(draws) for n, m in chosen.items()}

    if request.ensemble_method == "weighted_voting":
        used_weights = _normalised_weights(list(chosen), weights) if weights else voting_weights(chosen)
    elif request.ensemble_method == "blending":
        used_weights = _normalised_weights(list(chosen), weights)
    else:
        if stacker is None:
            stacker = StackingCombiner().fit(chosen)
        elif stacker.members != list(chosen):
            raise ValueError(f"the stacker was fit on {stacker.members}, not {list(chosen)}")
        used_weights = {n: round(float(c), 4) for n, c in zip(stacker.members, stacker.coef, strict=True)}
    combined = combine_scores(member_scores, request.ensemble_method, weights=used_weights, stacker=stacker)
    evidence = ensemble_evidence(
        chosen,
        request.ensemble_method,
        weights=used_weights,
        stacking_c=stacker.params.C if stacker is not None else 1.0,
    )
    max_score = float(score_of(evidence.weight * max_log_likelihood_ratio(combined)))
    reachable = max_score >= request.confidence_threshold

    generator = make_rng(rng)
    passing: list[tuple[tuple[int, ...], float]] = []
    failing: dict[tuple[int, ...], float] = {}
    seen: set[tuple[int, ...]] = set()
    evaluated = 0
    while evaluated < max_candidates and (
        len(passing) < request.sets_count if reachable else len(failing) < request.sets_count
    ):
        candidates = gumbel_top_k(combined, batch, generator)
        scores = confidence_scores(candidates, combined, evidence)
        evaluated += batch
        for row, score in zip(candidates, scores, strict=True):
            key = tuple(int(x) for x in row)
            if key in seen:
                continue
            seen.add(key)
            if score >= request.confidence_threshold:
                passing.append((key, float(score)))
                if len(passing) == request.sets_count:
                    break
            else:
                failing[key] = float(score)
    picked = [(numbers, score, False) for numbers, score in passing]
    if len(picked) < request.sets_count:
        best = sorted(failing.items(), key=lambda item: -item[1])  # stable: ties keep the order drawn
        picked += [(numbers, score, True) for numbers, score in best[: request.sets_count - len(picked)]]

    name = f"ensemble_{request.ensemble_method}"
    tops = {n: set(top_k(s)) for n, s in member_scores.items()}
    weight_kind = "메타 학습기 계수" if request.ensemble_method == "stacking" else "가중치"
    weight_text = f"{weight_kind} " + ", ".join(f"{n} {w:.2f}" for n, w in used_weights.items())
    predictions = []
    for index, (numbers, score, below) in enumerate(picked, start=1):
        confidence = round(score, 4)
        overlap = ", ".join(f"{n} {len(tops[n].intersection(numbers))}개" for n in chosen)
        explanation = [
            f"🤝 {machine_label(machine)} 앙상블 ({request.ensemble_method}): {weight_text}",
            f"📊 각 모델 상위 6개 번호와 겹침 — {overlap}",
            score_line(confidence, evidence),
        ]
        if below and not reachable:
            explanation.append(
                f"⚠️ 모델 점수가 기준 {request.confidence_threshold * 100:.1f}% 미만: 어떤 세트도 도달 불가 "
                f"(최고 가능 점수 {max_score * 100:.1f}%, 검증 근거 부족)"
            )
        elif below:
            explanation.append(
                f"⚠️ 모델 점수가 기준 {request.confidence_threshold * 100:.1f}% 미만 "
                "(기준을 넘는 세트가 부족해 점수 순으로 채움)"
            )
        explanation.append(DISCLAIMER_LINE)
        predictions.append(
            EnsembleSet(
                set_number=index,
                numbers=list(numbers),
                confidence_score=confidence,
                algorithm_used=name,
                explanation=explanation,
                below_threshold=below,
            )
        )
    below_count = sum(1 for p in predictions if p.below_threshold)
    return EnsembleResult(
        machine_type=machine_label(machine),
        predictions=predictions,
        metadata=EnsembleMetadata(
            algorithm=name,
            ensemble_method=request.ensemble_method,
            models=list(chosen),
            model_weights={n: round(float(w), 4) for n, w in used_weights.items()},
            model_metrics={n: dict(m.metrics) for n, m in chosen.items()},
            confidence_threshold=request.confidence_threshold,
            threshold_met=below_count == 0,
            threshold_reachable=reachable,
            max_confidence_score=round(max_score, 4),
            sets_below_threshold=below_count,
            candidates_evaluated=evaluated,
            model_version=MODEL_VERSION,
            features_used=sorted({f"model:{n}" for n in chosen} | {"number_frequency", "gap_since_last_seen"}),
            machine_draws_in_history=len(history),
            confidence_evidence=evidence,
        ),
    )
