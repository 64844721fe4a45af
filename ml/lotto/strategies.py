"""Per-number weights and the three machine (호기) strategies shared by the generators and ``enhanced_predictor``.

The frequency model (``enhanced``) over a window of a machine's most recent draws:

* ``count_i`` = appearances of number i among the six main numbers of the window (bonus excluded),
  optionally recency-weighted (each draw weighted ``0.5 ** (age / half_life)``, age 0 = newest);
* ``weight_i = (count_i + k) / (mean_count + k)`` with a smoothing of ``k = 5`` pseudo-appearances,
  so a number seen as often as average has weight 1 and small windows stay close to uniform;
* then the machine strategy (the seed's table):

  ====== ============ ================================================================ ====================
  호기   전략          adjustment                                                       algorithm_used
  ====== ============ ================================================================ ====================
  1호기  신중한 전략가 ×1.15 on hot numbers: the ceil(30 % × 45) = 14 most frequent in    enhanced_ml_premium
                      the window (ties: smaller number first)
  2호기  완벽한 조화   ×1.20 on *sets* that are balanced: 2–4 odd and 2–4 high (23–45)  enhanced_ml_balanced
  3호기  창조적 혁신   ×1.12 on odd numbers                                             enhanced_ml_creative
  ====== ============ ================================================================ ====================

A set's model weight is the product of its numbers' weights times its set factor (2호기 only). Draws
are uniform random: these weights describe a model, not the lottery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from ml.lotto.draws import HIGH_MIN, NUMBER_MAX, NUMBERS_PER_DRAW, Draw, multi_hot, parse_machine

SMOOTHING: Final = 5.0
HOT_SHARE: Final = 0.30
HOT_COUNT: Final = math.ceil(HOT_SHARE * NUMBER_MAX)  # 14
HOT_BOOST: Final = 1.15
BALANCE_BOOST: Final = 1.20
ODD_BOOST: Final = 1.12
BALANCED_RANGE: Final = (2, 4)


@dataclass(frozen=True)
class MachineStrategy:
    machine: int
    name: str
    algorithm_name: str
    emoji: str
    adjustment: str
    feature: str


STRATEGIES: Final[dict[int, MachineStrategy]] = {
    1: MachineStrategy(1, "신중한 전략가", "enhanced_ml_premium", "🎯", "고수 번호 +15%", "hot_numbers_top30"),
    2: MachineStrategy(2, "완벽한 조화", "enhanced_ml_balanced", "⚖️", "균형점수 +20%", "odd_even_high_low_balance"),
    3: MachineStrategy(3, "창조적 혁신", "enhanced_ml_creative", "✨", "홀수 가중 +12%", "odd_number_weight"),
}


# ---------------------------------------------------------------------------------------------------------------
# vectorised set patterns over an (N, 6) int array of 1-based numbers


def as_set_array(sets: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    array = np.asarray(sets, dtype=np.int64)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    return array


def odd_counts(sets: np.ndarray) -> np.ndarray:
    return (as_set_array(sets) % 2 == 1).sum(axis=1)


def high_counts(sets: np.ndarray) -> np.ndarray:
    return (as_set_array(sets) >= HIGH_MIN).sum(axis=1)


def set_sums(sets: np.ndarray) -> np.ndarray:
    return as_set_array(sets).sum(axis=1)


def ac_values(sets: np.ndarray) -> np.ndarray:
    """AC value of each row (distinct positive pairwise differences minus k-1), vectorised."""
    array = as_set_array(sets)
    k = array.shape[1]
    mask = np.zeros(array.shape[0], dtype=np.uint64)
    for i in range(k):
        for j in range(i + 1, k):
            diff = np.abs(array[:, j] - array[:, i]).astype(np.uint64)
            mask |= np.left_shift(np.uint64(1), diff)
    return np.bitwise_count(mask).astype(np.int64) - (k - 1)


def balanced(sets: np.ndarray) -> np.ndarray:
    """2호기's balance: 2–4 odd numbers and 2–4 high numbers (boolean per row)."""
    lo, hi = BALANCED_RANGE
    odd = odd_counts(sets)
    high = high_counts(sets)
    return (odd >= lo) & (odd <= hi) & (high >= lo) & (high <= hi)


# ---------------------------------------------------------------------------------------------------------------
# the frequency model


def frequency_counts(window: Sequence[Draw], *, half_life: float | None = None) -> np.ndarray:
    """Per-number appearances in ``window`` (oldest first), recency-weighted when ``half_life`` is set."""
    counts = np.zeros(NUMBER_MAX, dtype=np.float64)
    size = len(window)
    for position, draw in enumerate(window):
        age = size - 1 - position
        weight = 1.0 if half_life is None else 0.5 ** (age / half_life)
        for n in draw.numbers:
            counts[n - 1] += weight
    return counts


def hot_numbers(counts: np.ndarray, *, size: int = HOT_COUNT) -> frozenset[int]:
    """The ``size`` most frequent numbers (ties: the smaller number first)."""
    return frozenset(int(i) + 1 for i in np.argsort(-np.asarray(counts), kind="stable")[:size])


def strategy_weights(
    counts: np.ndarray,
    plain_counts: np.ndarray,
    machine: int | None,
    *,
    smoothing: float = SMOOTHING,
    apply_strategy: bool = True,
) -> np.ndarray:
    """Per-number weights from window counts, row by row: ``(counts + k) / (mean_count + k)``, then the
    machine's per-number adjustment (1호기: ×1.15 on the 14 most frequent by ``plain_counts``, ties to the smaller
    number; 3호기: ×1.12 on odd numbers; 2호기's factor is set-level, see :meth:`NumberModel.set_factors`).
    ``counts`` and ``plain_counts`` are (45,) or (rows, 45); the result has the same shape."""
    if smoothing <= 0:
        raise ValueError("smoothing must be > 0")
    counts = np.asarray(counts, dtype=np.float64)
    rows = np.atleast_2d(counts)
    weights = (rows + smoothing) / (rows.mean(axis=1, keepdims=True) + smoothing)
    if apply_strategy and machine == 1:
        hot = np.argsort(-np.atleast_2d(plain_counts), axis=1, kind="stable")[:, :HOT_COUNT]
        boost = np.ones_like(weights)
        np.put_along_axis(boost, hot, HOT_BOOST, axis=1)
        weights *= boost
    elif apply_strategy and machine == 3:
        weights[:, 0::2] *= ODD_BOOST  # index 0 = number 1: odd numbers are the even indices
    return weights.reshape(counts.shape)


def rolling_probabilities(
    history: Sequence[Draw], machine: str | int | None, window: int, *, smoothing: float = SMOOTHING
) -> np.ndarray:
    """Row ``t - 1`` (t = 1..len(history)) = ``number_model(history[max(0, t - window):t], machine).probabilities()``:
    what the frequency model said before each draw t ≥ 1 (the last row is the forecast after the last draw)."""
    number = None if machine is None else parse_machine(machine)
    hits = np.zeros((len(history) + 1, NUMBER_MAX))
    hits[1:] = multi_hot(history)
    cumulative = np.cumsum(hits, axis=0)
    ends = np.arange(1, len(history) + 1)
    counts = cumulative[ends] - cumulative[np.maximum(0, ends - window)]
    weights = strategy_weights(counts, counts, number, smoothing=smoothing)
    probabilities: np.ndarray = weights / weights.sum(axis=1, keepdims=True) * NUMBERS_PER_DRAW
    return probabilities


@dataclass(frozen=True)
class NumberModel:
    """Per-number weights (index 0 = number 1) plus an optional set-level factor (2호기)."""

    weights: np.ndarray
    counts: np.ndarray = field(repr=False)
    draws_analysed: int
    machine: int | None = None
    strategy_applied: bool = False
    hot: frozenset[int] = frozenset()
    balance_boost: float = 1.0

    def set_factors(self, sets: np.ndarray) -> np.ndarray:
        factors = np.ones(as_set_array(sets).shape[0], dtype=np.float64)
        if self.balance_boost != 1.0:
            factors[balanced(sets)] = self.balance_boost
        return factors

    @property
    def max_set_factor(self) -> float:
        return max(1.0, self.balance_boost)

    def probabilities(self) -> np.ndarray:
        """Weights rescaled to sum to 6 (a probability-like score per number; set factors not included)."""
        return self.weights / self.weights.sum() * NUMBERS_PER_DRAW


def uniform_model() -> NumberModel:
    return NumberModel(weights=np.ones(NUMBER_MAX), counts=np.zeros(NUMBER_MAX), draws_analysed=0)


def number_model(
    window: Sequence[Draw],
    machine: str | int | None = None,
    *,
    smoothing: float = SMOOTHING,
    half_life: float | None = None,
    apply_strategy: bool = True,
) -> NumberModel:
    """The ``enhanced`` frequency model over ``window`` (oldest first) with ``machine``'s strategy.

    ``apply_strategy=False`` (or ``machine=None``) gives the plain smoothed-frequency weights.
    """
    counts = frequency_counts(window, half_life=half_life)
    plain_counts = frequency_counts(window)
    number = None if machine is None else parse_machine(machine)
    applied = apply_strategy and number is not None
    weights = strategy_weights(counts, plain_counts, number, smoothing=smoothing, apply_strategy=applied)
    balance_boost = BALANCE_BOOST if applied and number == 2 else 1.0
    return NumberModel(
        weights=weights,
        counts=plain_counts,
        draws_analysed=len(window),
        machine=number,
        strategy_applied=applied,
        hot=hot_numbers(plain_counts),
        balance_boost=balance_boost,
    )
