"""``confidence_score``: a model's preference for a set, weighted by the model's held-out evidence.

Scale: **0.5 means "no different from a uniform random set"**; the distance from 0.5 grows only as far as the
model's measured advantage over the uniform predictor on held-out draws allows. It is never a chance of winning:
every set has the same 1 / 8,145,060 chance of being drawn.

For a model with per-number probabilities ``p`` (45 values summing to 6; the uniform predictor has
``q = 6/45`` for every number) and a set S (y_i = 1 for the six numbers in S):

1. **Set log-likelihood ratio**
   ``LLR(S) = Σ_i [ y_i·log(p_i/q) + (1 − y_i)·log((1 − p_i)/(1 − q)) ]``: how much more likely the model's
   per-number predictions make "the draw is S" than the uniform predictor does. It equals
   45 × (uniform log-loss on S − the model's log-loss on S), the quantity ``holdout_log_loss`` averages.
2. **Evidence** from held-out draws, each predicted only from draws before it: the gain per draw
   ``g_t = LLR_t(drawn set)`` (its mean is 45 × the held-out log-loss gap against the uniform baseline) and the
   gain the model claims for itself, ``c_t = Σ_i KL(Bern(p_ti) ‖ Bern(q)) = E_model[LLR_t]``. The weight is
   ``w = clip(L / mean(c), 0, 1)`` where ``L`` is the lower end of the 95 % Student-t interval of ``mean(g)``:
   the share of its claimed advantage the model has shown it delivers. No held-out draws, or an interval that
   reaches 0 or below (no measured gain) → ``w = 0``.
3. ``confidence_score(S) = 1 / (1 + exp(−w · LLR(S)))``, in (0, 1). ``w = 0`` gives exactly 0.5 for every
   set. With ``w = 1`` it is the probability that S came from the model rather than from uniform at even prior
   odds; a smaller ``w`` tempers the likelihood ratio (a power likelihood).

Only per-number predictions enter: 2호기's set-level ×1.20 and the premium pattern filters choose which sets are
generated but do not move the score (no held-out log-loss measures them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from ml.lotto.draws import NUMBER_MAX, NUMBERS_PER_DRAW, Draw, multi_hot
from ml.lotto.strategies import SMOOTHING, rolling_probabilities

BASE_RATE: Final = NUMBERS_PER_DRAW / NUMBER_MAX
CONFIDENCE_LEVEL: Final = 0.95
_EPS: Final = 1e-6

SCORE_DEFINITION: Final = (
    "confidence_score = 1/(1+exp(-w*LLR)): LLR = log-likelihood ratio of the set under the model's per-number "
    "probabilities against uniform (6/45 each); w in [0, 1] = lower end of the 95% interval of the model's held-out "
    "log-likelihood gain per draw over the uniform baseline, divided by the gain it claims (0 when no gain is "
    "shown). 0.5 = no different from a uniform random set. A model score, not a chance of winning: every set "
    "has the same 1/8,145,060 chance"
)


class ConfidenceEvidence(BaseModel):
    """The held-out record a ``confidence_score`` is weighted by (see the module doc)."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="what was evaluated, on which draws")
    held_out_draws: int = Field(ge=0, description="draws scored, each from the draws before it")
    gain_per_draw: float | None = Field(
        default=None, description="mean log-likelihood gain over the uniform predictor per draw (nats; 0 = none)"
    )
    gain_per_draw_ci95: tuple[float, float] | None = Field(default=None, description="95 % Student-t interval")
    log_loss_gap: float | None = Field(
        default=None, description="uniform baseline log-loss − model log-loss per number (= gain / 45)"
    )
    p_value: float | None = Field(default=None, description="two-sided one-sample t-test of gain = 0")
    claimed_gain_per_draw: float | None = Field(
        default=None, description="the gain the model expects if it were right (mean KL against uniform)"
    )
    weight: float = Field(ge=0.0, le=1.0, description="w: 0 = no evidence, every score 0.5")

    @property
    def shown(self) -> bool:
        return self.weight > 0


def no_evidence(source: str) -> ConfidenceEvidence:
    return ConfidenceEvidence(source=source, held_out_draws=0, weight=0.0)


def _clip(p: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)


def _number_terms(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-number gain of being drawn, gain of nothing drawn) so that LLR(S) = base + Σ_{i∈S} gain_i."""
    p = _clip(probabilities)
    absent = np.log((1 - p) / (1 - BASE_RATE))
    present = np.log(p / BASE_RATE) - absent
    return present, absent.sum(axis=-1)


def set_log_likelihood_ratios(sets: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``LLR(S)`` of each row of ``sets`` ((N, 6) array of numbers 1–45) under ``probabilities`` (45,)."""
    present, base = _number_terms(probabilities)
    array = np.asarray(sets, dtype=np.int64)
    return np.asarray(base + present[array - 1].sum(axis=1), dtype=np.float64)


def max_log_likelihood_ratio(probabilities: np.ndarray) -> float:
    """The highest ``LLR`` any set reaches (the six numbers with the largest per-number gain)."""
    present, base = _number_terms(probabilities)
    return float(base + np.sort(present)[-NUMBERS_PER_DRAW:].sum())


def confidence_scores(sets: np.ndarray, probabilities: np.ndarray, evidence: ConfidenceEvidence) -> np.ndarray:
    """``confidence_score`` of each set (see the module doc): exactly 0.5 when the evidence weight is 0."""
    if not evidence.shown:
        return np.full(np.asarray(sets).shape[0], 0.5)
    return score_of(evidence.weight * set_log_likelihood_ratios(sets, probabilities))


def score_of(weighted_llr: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(weighted_llr, dtype=np.float64))))


def evidence_from_holdout(scores: np.ndarray, targets: np.ndarray, source: str) -> ConfidenceEvidence:
    """Evidence from held-out rows: ``scores`` (draws, 45) predicted before each draw, ``targets`` its 0/1 numbers."""
    scores = _clip(np.atleast_2d(scores))
    targets = np.atleast_2d(np.asarray(targets, dtype=np.float64))
    n = scores.shape[0]
    if n < 2:
        return ConfidenceEvidence(source=source, held_out_draws=n, weight=0.0)
    gains = (
        targets * np.log(scores / BASE_RATE) + (1 - targets) * np.log((1 - scores) / (1 - BASE_RATE))
    ).sum(axis=1)
    claimed = (
        scores * np.log(scores / BASE_RATE) + (1 - scores) * np.log((1 - scores) / (1 - BASE_RATE))
    ).sum(axis=1)
    mean = float(gains.mean())
    sd = float(gains.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE_LEVEL / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    claim = float(claimed.mean())
    weight = min(1.0, max(0.0, low / claim)) if claim > 0 else 0.0
    p_value = float(stats.ttest_1samp(gains, 0.0).pvalue) if sd > 0 else None
    return ConfidenceEvidence(
        source=source,
        held_out_draws=n,
        gain_per_draw=round(mean, 6),
        gain_per_draw_ci95=(round(low, 6), round(high, 6)),
        log_loss_gap=round(mean / NUMBER_MAX, 8),
        p_value=None if p_value is None else round(p_value, 6),
        claimed_gain_per_draw=round(claim, 6),
        weight=round(weight, 6),
    )


def frequency_evidence_series(
    history: Sequence[Draw], machine: int, window: int, *, smoothing: float = SMOOTHING
) -> Callable[[int], ConfidenceEvidence]:
    """``before(k)`` = :func:`frequency_evidence` of ``history[:k]``, with the rolling forecasts computed once
    (a backtest asks at every origin)."""
    forecasts = rolling_probabilities(history, machine, window, smoothing=smoothing)
    targets = multi_hot(history)

    def before(k: int) -> ConfidenceEvidence:
        if k < 3:
            return no_evidence(f"frequency model, window {window}: fewer than 3 draws of the machine")
        return evidence_from_holdout(
            forecasts[: k - 1],  # row t - 1 was made before draw t
            targets[1:k],
            f"frequency model (window {window}), rolling origin over the machine's draws "
            f"{history[1].round}–{history[k - 1].round}",
        )

    return before


def frequency_evidence(
    history: Sequence[Draw], machine: int, window: int, *, smoothing: float = SMOOTHING
) -> ConfidenceEvidence:
    """Evidence for the ``enhanced``/``premium`` frequency model: rolling origin over the machine's ``history``
    (oldest first), every draw after the first scored from the ``window`` draws before it."""
    return frequency_evidence_series(history, machine, window, smoothing=smoothing)(len(history))
