from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest

from ml.lotto.backtest import (
    RANDOM_EXPECTED_MATCHES,
    RANDOM_P_3PLUS,
    backtest,
    differentiation_score,
    jensen_shannon_distance,
    machine_statistics,
    match_distribution,
    performance_metrics,
    wilson_interval,
)
from ml.lotto.draws import Draw
from ml.lotto.statistics import EmptyHistoryError


def test_exact_random_baseline() -> None:
    distribution = match_distribution()
    assert sum(distribution) == 1
    assert sum(k * p for k, p in enumerate(distribution)) == RANDOM_EXPECTED_MATCHES == Fraction(4, 5)
    assert RANDOM_P_3PLUS == Fraction(182_780 + 11_115 + 234 + 1, 8_145_060)
    assert float(RANDOM_P_3PLUS) == pytest.approx(0.0238341, abs=1e-7)
    assert distribution[6] == Fraction(1, math.comb(45, 6))


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(0, 100)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(1.959964**2 / (100 + 1.959964**2), rel=1e-6)
    low, high = wilson_interval(50, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))


def test_random_generator_reproduces_the_baseline_within_its_interval(history: list[Draw]) -> None:
    result = backtest(history, "1호기", algorithm="basic", rounds=300, sets_per_round=10, rng=11)
    assert result.rounds_evaluated == 300 and result.sets_evaluated == 3000
    low, high = result.mean_matches_ci95
    assert low <= 0.8 <= high
    assert high - low < 0.1  # and the interval is tight enough to mean something
    low, high = result.hit_rate_3plus_ci95
    assert low <= float(RANDOM_P_3PLUS) <= high
    assert result.baseline_within_ci
    assert sum(result.match_histogram.values()) == 3000
    assert result.confidence_correlation is None  # basic scores every set 0.5


def test_a_cheating_generator_is_caught(history: list[Draw]) -> None:
    machine_draws = [d for d in history if d.machine == 2]
    next_draw = {machine_draws[i - 1].round: machine_draws[i] for i in range(1, len(machine_draws))}

    def oracle(before: Sequence[Draw], rng: np.random.Generator) -> list[tuple[list[int], float]]:
        target = next_draw[before[-1].round].numbers
        rest = [n for n in range(1, 46) if n not in target]
        return [(sorted([*target[:3], *rng.choice(rest, 3, replace=False).tolist()]), 1.0) for _ in range(5)]

    result = backtest(history, 2, rounds=100, generator=oracle, algorithm_label="oracle")
    assert result.mean_matches >= 3.0
    assert result.mean_matches_ci95[0] > 0.8
    assert result.hit_rate_3plus == 1.0
    assert not result.baseline_within_ci


def test_backtest_uses_only_earlier_draws(history: list[Draw]) -> None:
    seen: list[tuple[int, int]] = []
    machine_draws = [d for d in history if d.machine == 3]

    def spy(before: Sequence[Draw], rng: np.random.Generator) -> list[tuple[list[int], float]]:
        seen.append((len(before), before[-1].round))
        return [([1, 2, 3, 4, 5, 6], 0.5)]

    result = backtest(history, 3, rounds=10, sets_per_round=1, generator=spy)
    assert [n for n, _ in seen] == list(range(len(machine_draws) - 10, len(machine_draws)))
    assert [r for _, r in seen] == [d.round for d in machine_draws[-11:-1]]
    assert result.last_origin_round == machine_draws[-1].round


def test_backtest_edges(hand_draws: list[Draw]) -> None:
    result = backtest(hand_draws, 1, algorithm="enhanced", rounds=50, sets_per_round=2)
    assert result.rounds_evaluated == 2 and result.skipped_origins == 1  # the first draw has no history
    with pytest.raises(EmptyHistoryError):
        backtest(hand_draws, 3)
    with pytest.raises(ValueError):
        backtest(hand_draws, 1, rounds=0)


def test_performance_metrics_block(history: list[Draw]) -> None:
    metrics = performance_metrics(history, "3호기", rounds=40, rng=5).model_dump()
    for key in ("mean_matches", "mean_matches_ci95", "mean_matches_random_baseline", "hit_rate_3plus",
                "hit_rate_3plus_ci95", "hit_rate_3plus_random_baseline", "rounds_evaluated",
                "prediction_accuracy", "confidence_correlation", "differentiation_score"):
        assert key in metrics
    assert metrics["rounds_evaluated"] == 40
    assert metrics["mean_matches_random_baseline"] == 0.8
    assert metrics["prediction_accuracy"] == pytest.approx(metrics["mean_matches"] / 6, abs=1e-4)
    assert metrics["prediction_accuracy_random_baseline"] == pytest.approx(6 / 45, abs=1e-4)
    assert 0.0 <= metrics["differentiation_score"] <= 1.0
    # None when every score is 0.5: the frequency model shows no held-out gain on uniform draws (docs/lotto.md)
    assert metrics["confidence_correlation"] is None or -1.0 <= metrics["confidence_correlation"] <= 1.0


def test_differentiation_and_js_distance(hand_draws: list[Draw]) -> None:
    p = np.ones(45)
    assert jensen_shannon_distance(p, p) == 0.0
    q = np.zeros(45)
    q[0] = 1.0
    r = np.zeros(45)
    r[1] = 1.0
    assert jensen_shannon_distance(q, r) == pytest.approx(1.0)
    assert differentiation_score(hand_draws, 3) is None
    only_one_machine = [d for d in hand_draws if d.machine == 1]
    assert differentiation_score(only_one_machine, 1) is None
    assert 0.0 < (differentiation_score(hand_draws, 1) or 0.0) < 1.0


def test_machine_statistics_has_the_seed_shape(history: list[Draw], hand_draws: list[Draw]) -> None:
    body = machine_statistics(history, "2호기", rounds=50)
    seed_keys = {"machine_type", "analysis_period", "number_frequency", "pattern_analysis", "performance_metrics"}
    assert seed_keys <= set(body)
    assert body["machine_type"] == "2호기"
    assert set(body["analysis_period"]) == {"total_rounds", "start_round", "end_round"}
    assert set(body["number_frequency"]) == {"most_frequent", "least_frequent", "frequency_distribution"}
    assert set(body["pattern_analysis"]) == {
        "avg_odd_count", "avg_even_count", "avg_high_count", "avg_low_count",
        "avg_ac_value", "avg_last_digit_sum", "avg_total_sum",
    }
    assert 0 <= body["pattern_analysis"]["avg_ac_value"] <= 10
    metrics = body["performance_metrics"]
    assert {"prediction_accuracy", "confidence_correlation", "differentiation_score"} <= set(metrics)
    assert metrics["rounds_evaluated"] == 50
    assert machine_statistics(history, 2, rounds=50) == body  # deterministic: cacheable
    assert machine_statistics(hand_draws, 2)["performance_metrics"] is None  # one draw: nothing to backtest
