"""Per-machine statistics over real (imported) draws: AC value, number frequency, set patterns.

Definitions (also in docs/lotto.md):

* **AC value** (arithmetic complexity) of six numbers = the number of *distinct* positive pairwise
  differences minus 5. Range 0..10; e.g. AC([3, 5, 13, 20, 21, 37]) = 7. Over all C(45,6) combinations
  the mean is 32,837,489 / 4,072,530 ≈ 8.063 and 85.2 % have AC ≥ 7. An average AC of 16.7 is impossible.
* **share** of a number = its appearances among the six main numbers (bonus excluded) / number of draws
  analysed. The 45 shares sum to 6; under uniform draws each is 6/45 ≈ 0.1333 on average.
* odd/even, high (23..45) / low (1..22), last-digit sum (sum of ``n % 10``) and total sum are per draw
  and averaged over the draws analysed.

Everything here is descriptive: draws are uniform random, and no statistic predicts the next draw.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict

from ml.lotto.draws import (
    HIGH_MIN,
    NUMBER_MAX,
    NUMBER_MIN,
    NUMBERS_PER_DRAW,
    Draw,
    draws_for_machine,
    machine_label,
)


class EmptyHistoryError(ValueError):
    """There are no draws to analyse (none imported, or none for this machine)."""

    code: Final = "NO_DRAW_DATA"

    def __init__(self, machine: str | int | None = None) -> None:
        self.machine = machine
        where = f" for {machine_label(machine)}" if machine is not None else ""
        super().__init__(f"No draws available{where}: import draws (JSON or CSV) before asking for statistics.")


EXPECTED_AC_UNIFORM: Final = Fraction(32_837_489, 4_072_530)
"""Exact mean AC value over all C(45,6) combinations (≈ 8.0632), by enumeration."""
P_AC_AT_LEAST_7_UNIFORM: Final = Fraction(6_943_080, 8_145_060)
"""Exact share of combinations with AC ≥ 7 (≈ 0.8524), by enumeration."""


def ac_value(numbers: Iterable[int]) -> int:
    """Standard AC value: count of distinct positive pairwise differences minus (k - 1).

    For six numbers the range is 0..10 (0 for an arithmetic progression such as 1,2,3,4,5,6).
    The numbers must be distinct.
    """
    values = sorted(int(n) for n in numbers)
    if len(values) < 2:
        raise ValueError("AC value needs at least two numbers")
    if len(set(values)) != len(values):
        raise ValueError(f"numbers must be distinct: {values}")
    differences = {b - a for a, b in itertools.combinations(values, 2)}
    return len(differences) - (len(values) - 1)


def odd_count(numbers: Iterable[int]) -> int:
    return sum(1 for n in numbers if n % 2 == 1)


def high_count(numbers: Iterable[int]) -> int:
    """How many numbers are high (23..45)."""
    return sum(1 for n in numbers if n >= HIGH_MIN)


def last_digit_sum(numbers: Iterable[int]) -> int:
    return sum(n % 10 for n in numbers)


@functools.cache
def uniform_sum_distribution() -> tuple[float, ...]:
    """Exact distribution of the sum of a uniformly random 6-of-45 set: index = sum, value = probability."""
    max_sum = sum(range(NUMBER_MAX - NUMBERS_PER_DRAW + 1, NUMBER_MAX + 1))
    ways = np.zeros((NUMBERS_PER_DRAW + 1, max_sum + 1), dtype=np.float64)
    ways[0, 0] = 1.0
    for n in range(NUMBER_MIN, NUMBER_MAX + 1):
        for k in range(NUMBERS_PER_DRAW, 0, -1):
            ways[k, n:] += ways[k - 1, : max_sum + 1 - n]
    total = ways[NUMBERS_PER_DRAW].sum()
    return tuple((ways[NUMBERS_PER_DRAW] / total).tolist())


def uniform_sum_quantile(q: float) -> int:
    """Smallest sum s with P(sum ≤ s) ≥ q for a uniformly random set (exact)."""
    cumulative = np.cumsum(uniform_sum_distribution())
    return int(np.searchsorted(cumulative, q - 1e-12))


UNIFORM_REFERENCE: Final[dict[str, float]] = {
    "avg_odd_count": round(NUMBERS_PER_DRAW * 23 / 45, 4),
    "avg_even_count": round(NUMBERS_PER_DRAW * 22 / 45, 4),
    "avg_high_count": round(NUMBERS_PER_DRAW * 23 / 45, 4),
    "avg_low_count": round(NUMBERS_PER_DRAW * 22 / 45, 4),
    "avg_ac_value": round(float(EXPECTED_AC_UNIFORM), 4),
    "avg_last_digit_sum": 26.0,
    "avg_total_sum": 138.0,
    "number_share": round(NUMBERS_PER_DRAW / NUMBER_MAX, 4),
}
"""Exact expectations of the pattern averages (and of each number's share) when draws are uniform random."""


class AnalysisPeriod(BaseModel):
    model_config = ConfigDict(frozen=True)

    total_rounds: int
    start_round: int
    end_round: int


class NumberFrequency(BaseModel):
    model_config = ConfigDict(frozen=True)

    most_frequent: list[int]
    least_frequent: list[int]
    frequency_distribution: dict[str, float]


class PatternAnalysis(BaseModel):
    model_config = ConfigDict(frozen=True)

    avg_odd_count: float
    avg_even_count: float
    avg_high_count: float
    avg_low_count: float
    avg_ac_value: float
    avg_last_digit_sum: float
    avg_total_sum: float


class MachineAnalysis(BaseModel):
    """The body of ``GET /api/statistics/machine-analysis/{machine_type}`` minus ``performance_metrics``
    (see :func:`ml.lotto.backtest.performance_metrics`), plus ``random_baseline``: the exact uniform
    expectations to read the averages against."""

    model_config = ConfigDict(frozen=True)

    machine_type: str | None
    analysis_period: AnalysisPeriod
    number_frequency: NumberFrequency
    pattern_analysis: PatternAnalysis
    random_baseline: dict[str, float] = UNIFORM_REFERENCE
    requested_rounds: int


def number_counts(draws: Iterable[Draw]) -> np.ndarray:
    """Appearances of each number 1..45 among the main numbers: array of 45 ints (index 0 = number 1)."""
    counts = np.zeros(NUMBER_MAX, dtype=np.int64)
    for draw in draws:
        for n in draw.numbers:
            counts[n - 1] += 1
    return counts


def machine_analysis(
    draws: Sequence[Draw],
    rounds: int = 50,
    *,
    machine: str | int | None = None,
    top: int = 5,
) -> MachineAnalysis:
    """Statistics over the last ``rounds`` draws (of ``machine`` when given, else of ``draws`` as passed).

    When ``rounds`` exceeds the available history, all available draws are analysed and
    ``analysis_period.total_rounds`` reports how many really were (``requested_rounds`` keeps the ask).
    ``start_round``/``end_round`` are the round numbers of the first/last draw analysed; with draws
    alternating between machines, ``end_round - start_round + 1`` can exceed ``total_rounds``.

    Ties in most/least frequent are broken by the smaller number first. Raises
    :class:`EmptyHistoryError` when there is nothing to analyse, ``ValueError`` when ``rounds < 1``.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    history = draws_for_machine(draws, machine)
    if not history:
        raise EmptyHistoryError(machine)
    window = history[-rounds:]
    total = len(window)

    counts = number_counts(window)
    numbers = np.arange(1, NUMBER_MAX + 1)
    most = sorted(numbers.tolist(), key=lambda n: (-counts[n - 1], n))[:top]
    least = sorted(numbers.tolist(), key=lambda n: (counts[n - 1], n))[:top]
    distribution = {str(n): round(float(counts[n - 1]) / total, 4) for n in numbers.tolist()}

    odd = np.array([odd_count(d.numbers) for d in window], dtype=np.float64)
    high = np.array([high_count(d.numbers) for d in window], dtype=np.float64)
    patterns = PatternAnalysis(
        avg_odd_count=round(float(odd.mean()), 2),
        avg_even_count=round(float(NUMBERS_PER_DRAW - odd.mean()), 2),
        avg_high_count=round(float(high.mean()), 2),
        avg_low_count=round(float(NUMBERS_PER_DRAW - high.mean()), 2),
        avg_ac_value=round(float(np.mean([ac_value(d.numbers) for d in window])), 2),
        avg_last_digit_sum=round(float(np.mean([last_digit_sum(d.numbers) for d in window])), 2),
        avg_total_sum=round(float(np.mean([sum(d.numbers) for d in window])), 2),
    )
    return MachineAnalysis(
        machine_type=machine_label(machine) if machine is not None else None,
        analysis_period=AnalysisPeriod(
            total_rounds=total, start_round=window[0].round, end_round=window[-1].round
        ),
        number_frequency=NumberFrequency(
            most_frequent=most, least_frequent=least, frequency_distribution=distribution
        ),
        pattern_analysis=patterns,
        requested_rounds=rounds,
    )
