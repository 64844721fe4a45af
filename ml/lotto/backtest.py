"""Rolling-origin backtest against the exact random baseline, and the statistics ``performance_metrics`` block.

For each origin t among a machine's last ``rounds`` draws, sets are generated from the machine's draws
*before* t only, and each set's matched numbers are counted against draw t (bonus ignored).

* ``mean_matches`` with a 95 % interval: Student t over the per-origin means (sets generated for the
  same origin share the target, so origins are the independent units).
* ``hit_rate_3plus`` (share of sets with ≥ 3 matches) with a 95 % Wilson interval on the effective
  sample size (the number of sets divided by the design effect estimated from the per-origin rates).
* The random baseline is exact: a uniformly random set matches 6·6/45 = 0.8 numbers on average, and
  P(≥ 3 matches) = Σ_{k≥3} C(6,k)·C(39,6−k) / C(45,6) = 194,130 / 8,145,060 ≈ 0.023834.
* One test against the baseline, at a stated level (``baseline_test``): a two-sided one-sample Student t-test
  of the per-origin mean matches against 0.8 at 5 %, with the difference, its 95 % interval and the p-value.
  ``baseline_within_ci`` is its verdict: true when the test does not reject, i.e. the mean-matches interval
  contains 0.8 (about 1 run in 20 reads false on pure noise). The 3+ rate and its interval are reported
  beside it but are not a second test.

Because draws are uniform random, every honest generator should match the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

from ml.lotto.confidence import frequency_evidence_series
from ml.lotto.draws import (
    NUMBER_MAX,
    NUMBERS_PER_DRAW,
    Draw,
    draws_for_machine,
    machine_label,
    parse_machine,
)
from ml.lotto.generators import Algorithm, generate_sets
from ml.lotto.sampling import make_rng
from ml.lotto.statistics import EmptyHistoryError, machine_analysis
from ml.lotto.strategies import number_model

Z_95: Final = 1.959963984540054
MIN_SETS_FOR_CORRELATION: Final = 20
TEST_LEVEL: Final = 0.05


def match_distribution() -> tuple[Fraction, ...]:
    """Exact P(k matches), k = 0..6, for a uniformly random set against a draw (hypergeometric)."""
    total = math.comb(NUMBER_MAX, NUMBERS_PER_DRAW)
    others = NUMBER_MAX - NUMBERS_PER_DRAW
    return tuple(
        Fraction(math.comb(NUMBERS_PER_DRAW, k) * math.comb(others, NUMBERS_PER_DRAW - k), total)
        for k in range(NUMBERS_PER_DRAW + 1)
    )


RANDOM_EXPECTED_MATCHES: Final = Fraction(NUMBERS_PER_DRAW * NUMBERS_PER_DRAW, NUMBER_MAX)  # 0.8
RANDOM_P_3PLUS: Final = sum(match_distribution()[3:], Fraction(0))  # 194130 / 8145060


SetGenerator = Callable[[Sequence[Draw], np.random.Generator], Sequence[tuple[Sequence[int], float]]]
"""(history before the origin, rng) -> sets as (numbers, confidence_score)."""


class BaselineTest(BaseModel):
    """The one test of a backtest against the random baseline (see the module doc)."""

    model_config = ConfigDict(frozen=True)

    statistic: str = "mean_matches"
    test: str = "two-sided one-sample Student t-test over the per-origin mean matches"
    level: float = TEST_LEVEL
    baseline: float
    difference: float
    difference_ci95: tuple[float, float]
    p_value: float | None
    rejects_baseline: bool


def baseline_test(origin_means: np.ndarray, baseline: float) -> BaselineTest:
    """Test the mean of ``origin_means`` against ``baseline`` (no rejection with fewer than 2 origins)."""
    low, high = mean_interval(origin_means)
    p_value: float | None = None
    if origin_means.shape[0] >= 2 and float(origin_means.std(ddof=1)) > 0:
        p_value = float(stats.ttest_1samp(origin_means, baseline).pvalue)
    elif origin_means.shape[0] >= 2:
        p_value = 1.0 if float(origin_means[0]) == baseline else 0.0
    return BaselineTest(
        baseline=baseline,
        difference=round(float(origin_means.mean()) - baseline, 4),
        difference_ci95=(round(low - baseline, 4), round(high - baseline, 4)),
        p_value=None if p_value is None else round(p_value, 6),
        rejects_baseline=p_value is not None and p_value < TEST_LEVEL,
    )


class BacktestResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    machine_type: str
    algorithm: str
    rounds_requested: int
    rounds_evaluated: int
    skipped_origins: int
    first_origin_round: int | None
    last_origin_round: int | None
    sets_per_round: int
    sets_evaluated: int
    mean_matches: float
    mean_matches_ci95: tuple[float, float]
    mean_matches_random_baseline: float
    hit_rate_3plus: float
    hit_rate_3plus_ci95: tuple[float, float]
    hit_rate_3plus_random_baseline: float
    match_histogram: dict[str, int]
    match_histogram_random_baseline: dict[str, float]
    confidence_correlation: float | None
    baseline_test: BaselineTest
    baseline_within_ci: bool


def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion (``n`` may be an effective, non-integer size)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(cluster_means: np.ndarray) -> tuple[float, float]:
    """Student-t 95 % interval of the mean of independent cluster means."""
    r = cluster_means.shape[0]
    mean = float(cluster_means.mean())
    if r < 2:
        return (0.0, float(NUMBERS_PER_DRAW))
    se = float(cluster_means.std(ddof=1)) / math.sqrt(r)
    half = float(stats.t.ppf(0.975, r - 1)) * se
    return (mean - half, mean + half)


def _default_generator(
    machine_history: Sequence[Draw], machine: int, algorithm: Algorithm, sets_per_round: int, analysis_window: int
) -> SetGenerator:
    evidence_before = frequency_evidence_series(machine_history, machine, analysis_window)

    def generate(history: Sequence[Draw], rng: np.random.Generator) -> list[tuple[Sequence[int], float]]:
        result = generate_sets(
            history,
            machine,
            sets_count=sets_per_round,
            algorithm=algorithm,
            analysis_window=analysis_window,
            rng=rng,
            evidence=evidence_before(len(history)),  # history = the machine's draws before the origin
        )
        return [(p.numbers, p.confidence_score) for p in result.predictions]

    return generate


def backtest(
    draws: Sequence[Draw],
    machine: str | int,
    *,
    algorithm: Algorithm = "enhanced",
    rounds: int = 50,
    sets_per_round: int = 5,
    analysis_window: int = 50,
    min_history: int = 1,
    rng: np.random.Generator | int | None = 0,
    generator: SetGenerator | None = None,
    algorithm_label: str | None = None,
) -> BacktestResult:
    """Rolling-origin evaluation over the machine's last ``rounds`` draws (see module docstring).

    Origins with fewer than ``min_history`` earlier draws of the machine are skipped (counted in
    ``skipped_origins``). ``generator`` replaces the built-in algorithms (e.g. for an ensemble).
    """
    if rounds < 1 or sets_per_round < 1:
        raise ValueError("rounds and sets_per_round must be >= 1")
    number = parse_machine(machine)
    history = draws_for_machine(draws, number)
    if not history:
        raise EmptyHistoryError(number)
    random = make_rng(rng)
    make_sets = generator or _default_generator(history, number, algorithm, sets_per_round, analysis_window)

    start = max(0, len(history) - rounds)
    per_origin_matches: list[list[int]] = []
    confidences: list[float] = []
    evaluated_rounds: list[int] = []
    skipped = 0
    for index in range(start, len(history)):
        if index < min_history:
            skipped += 1
            continue
        target = set(history[index].numbers)
        produced = make_sets(history[:index], random)
        per_origin_matches.append([len(target.intersection(numbers)) for numbers, _ in produced])
        confidences.extend(float(score) for _, score in produced)
        evaluated_rounds.append(history[index].round)

    baseline_hist = {str(k): round(float(p), 6) for k, p in enumerate(match_distribution())}
    if not per_origin_matches:
        raise EmptyHistoryError(number)
    matches = np.array([m for origin in per_origin_matches for m in origin], dtype=np.float64)
    origin_means = np.array([np.mean(origin) for origin in per_origin_matches])
    origin_hits = np.array([np.mean(np.array(origin) >= 3) for origin in per_origin_matches])
    n_sets = matches.shape[0]
    hits = float((matches >= 3).sum())
    p_hat = hits / n_sets

    r = origin_hits.shape[0]
    design_effect = 1.0
    if r >= 2 and 0 < p_hat < 1:
        var_iid = p_hat * (1 - p_hat) / n_sets
        var_cluster = float(origin_hits.var(ddof=1)) / r
        design_effect = max(1.0, var_cluster / var_iid)
    hit_ci = wilson_interval(hits / design_effect, n_sets / design_effect)
    mean_ci = mean_interval(origin_means)

    correlation: float | None = None
    if n_sets >= MIN_SETS_FOR_CORRELATION and np.ptp(confidences) > 0 and np.ptp(matches) > 0:
        correlation = round(float(stats.spearmanr(confidences, matches).statistic), 4)

    baseline_mean = float(RANDOM_EXPECTED_MATCHES)
    baseline_hit = float(RANDOM_P_3PLUS)
    test = baseline_test(origin_means, baseline_mean)
    histogram = np.bincount(matches.astype(np.int64), minlength=NUMBERS_PER_DRAW + 1)
    return BacktestResult(
        machine_type=machine_label(number),
        algorithm=algorithm_label or algorithm,
        rounds_requested=rounds,
        rounds_evaluated=len(evaluated_rounds),
        skipped_origins=skipped,
        first_origin_round=evaluated_rounds[0],
        last_origin_round=evaluated_rounds[-1],
        sets_per_round=sets_per_round,
        sets_evaluated=n_sets,
        mean_matches=round(float(matches.mean()), 4),
        mean_matches_ci95=(round(mean_ci[0], 4), round(mean_ci[1], 4)),
        mean_matches_random_baseline=baseline_mean,
        hit_rate_3plus=round(p_hat, 4),
        hit_rate_3plus_ci95=(round(hit_ci[0], 4), round(hit_ci[1], 4)),
        hit_rate_3plus_random_baseline=round(baseline_hit, 6),
        match_histogram={str(k): int(c) for k, c in enumerate(histogram.tolist())},
        match_histogram_random_baseline=baseline_hist,
        confidence_correlation=correlation,
        baseline_test=test,
        baseline_within_ci=not test.rejects_baseline,
    )


def jensen_shannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance with log base 2, in [0, 1] (0 = identical distributions)."""
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    q = np.asarray(q, dtype=np.float64) / np.sum(q)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return math.sqrt(max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m)))


def differentiation_score(draws: Sequence[Draw], machine: str | int, *, analysis_window: int = 50) -> float | None:
    """Mean Jensen–Shannon distance (base 2, 0..1) between this machine's ``enhanced`` per-number weights
    and each other machine's, on their latest ``analysis_window`` draws. None when no other machine has
    draws. Describes how different the machines' generators are, not how good any of them is.
    (2호기's set-level balance factor is not a per-number weight and is not included.)"""
    number = parse_machine(machine)
    own = draws_for_machine(draws, number)[-analysis_window:]
    if not own:
        return None
    own_weights = number_model(own, number).weights
    distances = []
    for other in (m for m in (1, 2, 3) if m != number):
        window = draws_for_machine(draws, other)[-analysis_window:]
        if window:
            distances.append(jensen_shannon_distance(own_weights, number_model(window, other).weights))
    return round(float(np.mean(distances)), 4) if distances else None


class PerformanceMetrics(BaseModel):
    """``performance_metrics`` of ``GET /api/statistics/machine-analysis/{machine_type}``, honest version.

    The seed's three keys are kept with real definitions:

    * ``prediction_accuracy`` = mean matched numbers / 6 = share of generated numbers that were drawn
      (random baseline 6/45 ≈ 0.1333 in ``prediction_accuracy_random_baseline``);
    * ``confidence_correlation`` = Spearman correlation between ``confidence_score`` and matches over
      the backtest sets (≈ 0 expected; None when the scores are constant, e.g. ``basic``, or when fewer
      than 20 sets were evaluated);
    * ``differentiation_score`` = see :func:`differentiation_score`.
    """

    model_config = ConfigDict(frozen=True)

    algorithm: str
    rounds_evaluated: int
    sets_per_round: int
    sets_evaluated: int
    mean_matches: float
    mean_matches_ci95: tuple[float, float]
    mean_matches_random_baseline: float
    hit_rate_3plus: float
    hit_rate_3plus_ci95: tuple[float, float]
    hit_rate_3plus_random_baseline: float
    baseline_test: BaselineTest
    baseline_within_ci: bool
    prediction_accuracy: float
    prediction_accuracy_random_baseline: float
    confidence_correlation: float | None
    differentiation_score: float | None
    note: str = "Draws are uniform random: scores are model scores, not chances of winning."


def performance_metrics(
    draws: Sequence[Draw],
    machine: str | int,
    *,
    rounds: int = 50,
    algorithm: Algorithm = "enhanced",
    sets_per_round: int = 5,
    analysis_window: int = 50,
    rng: np.random.Generator | int | None = 0,
) -> PerformanceMetrics:
    """Backtest the machine's generator over its last ``rounds`` draws and report it beside the baseline."""
    result = backtest(
        draws,
        machine,
        algorithm=algorithm,
        rounds=rounds,
        sets_per_round=sets_per_round,
        analysis_window=analysis_window,
        rng=rng,
    )
    return PerformanceMetrics(
        algorithm=algorithm,
        rounds_evaluated=result.rounds_evaluated,
        sets_per_round=result.sets_per_round,
        sets_evaluated=result.sets_evaluated,
        mean_matches=result.mean_matches,
        mean_matches_ci95=result.mean_matches_ci95,
        mean_matches_random_baseline=result.mean_matches_random_baseline,
        hit_rate_3plus=result.hit_rate_3plus,
        hit_rate_3plus_ci95=result.hit_rate_3plus_ci95,
        hit_rate_3plus_random_baseline=result.hit_rate_3plus_random_baseline,
        baseline_test=result.baseline_test,
        baseline_within_ci=result.baseline_within_ci,
        prediction_accuracy=round(result.mean_matches / NUMBERS_PER_DRAW, 4),
        prediction_accuracy_random_baseline=round(NUMBERS_PER_DRAW / NUMBER_MAX, 4),
        confidence_correlation=result.confidence_correlation,
        differentiation_score=differentiation_score(draws, machine, analysis_window=analysis_window),
    )


MAX_STATISTICS_BACKTEST_ROUNDS: Final = 100


def machine_statistics(
    draws: Sequence[Draw],
    machine_type: str | int,
    rounds: int = 50,
    *,
    algorithm: Algorithm = "enhanced",
    backtest_rounds: int | None = None,
    rng: np.random.Generator | int | None = 0,
) -> dict[str, Any]:
    """The whole body of ``GET /api/statistics/machine-analysis/{machine_type}?rounds=N`` as a dict:
    :func:`~ml.lotto.statistics.machine_analysis` plus ``performance_metrics`` from a backtest over the
    machine's last ``backtest_rounds`` draws (default ``min(rounds, 100)``; None when the machine has
    fewer than two draws, since nothing can be backtested). Deterministic for a given ``rng`` seed, so
    the response can be cached / ETagged per (machine, rounds, latest round)."""
    number = parse_machine(machine_type)
    analysis = machine_analysis(draws, rounds, machine=number)
    body: dict[str, Any] = analysis.model_dump()
    origins = backtest_rounds if backtest_rounds is not None else min(rounds, MAX_STATISTICS_BACKTEST_ROUNDS)
    if len(draws_for_machine(draws, number)) >= 2:
        body["performance_metrics"] = performance_metrics(
            draws, number, rounds=origins, algorithm=algorithm, rng=rng
        ).model_dump()
    else:
        body["performance_metrics"] = None
    return body
