from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from ml.lotto.draws import Draw
from ml.lotto.statistics import (
    EXPECTED_AC_UNIFORM,
    P_AC_AT_LEAST_7_UNIFORM,
    EmptyHistoryError,
    ac_value,
    machine_analysis,
    uniform_sum_distribution,
    uniform_sum_quantile,
)
from ml.lotto.strategies import ac_values


def _ac_by_definition(numbers: list[int]) -> int:
    return len({abs(a - b) for a, b in itertools.combinations(numbers, 2)}) - 5


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ([3, 5, 13, 20, 21, 37], 7),  # the reference example
        ([1, 2, 3, 4, 5, 6], 0),  # arithmetic progression: differences 1..5 only
        ([1, 2, 4, 8, 16, 32], 10),  # all 15 differences distinct: the maximum
        ([3, 10, 23, 30, 41, 45], 8),
        ([5, 12, 23, 34, 40, 44], 9),
        ([37, 21, 20, 13, 5, 3], 7),  # order does not matter
    ],
)
def test_ac_value(numbers: list[int], expected: int) -> None:
    assert ac_value(numbers) == expected
    assert int(ac_values(np.array([sorted(numbers)]))[0]) == expected


def test_ac_value_range_and_vectorised_agree_on_random_sets() -> None:
    rng = np.random.default_rng(1)
    sets = np.sort(np.array([rng.choice(45, 6, replace=False) + 1 for _ in range(2000)]), axis=1)
    fast = ac_values(sets)
    assert fast.tolist() == [_ac_by_definition(list(row)) for row in sets.tolist()]
    assert fast.min() >= 0 and fast.max() <= 10
    # exact constants: mean ≈ 8.063 and 85.2 % with AC ≥ 7 (sampling error on 2000 sets is ≈ 0.03 and 0.008)
    assert abs(fast.mean() - float(EXPECTED_AC_UNIFORM)) < 0.12
    assert abs((fast >= 7).mean() - float(P_AC_AT_LEAST_7_UNIFORM)) < 0.035


def test_ac_value_rejects_repeats() -> None:
    with pytest.raises(ValueError, match="distinct"):
        ac_value([1, 1, 2, 3, 4, 5])


def test_machine_analysis_hand_computed(hand_draws: list[Draw]) -> None:
    result = machine_analysis(hand_draws, 50, machine="1호기")
    assert result.machine_type == "1호기"
    # 1호기 has rounds 1, 3 and 4: fewer than the 50 asked, so all three are analysed
    assert result.analysis_period.model_dump() == {"total_rounds": 3, "start_round": 1, "end_round": 4}
    assert result.requested_rounds == 50
    freq = result.number_frequency
    # 3, 5 and 23 appear twice; ties broken by the smaller number: 10, 12 next among the singles
    assert freq.most_frequent == [3, 5, 23, 10, 12]
    assert freq.least_frequent == [1, 2, 4, 6, 7]
    dist = freq.frequency_distribution
    assert len(dist) == 45 and list(dist) == [str(n) for n in range(1, 46)]
    assert dist["3"] == pytest.approx(2 / 3, abs=1e-4)
    assert dist["13"] == pytest.approx(1 / 3, abs=1e-4)
    assert dist["1"] == 0.0
    assert sum(dist.values()) == pytest.approx(6.0, abs=1e-3)  # share = appearances / draws: sums to 6
    patterns = result.pattern_analysis.model_dump()
    assert patterns == {
        "avg_odd_count": 3.67,  # (5 + 4 + 2) / 3
        "avg_even_count": 2.33,
        "avg_high_count": 3.0,  # (1 + 4 + 4) / 3
        "avg_low_count": 3.0,
        "avg_ac_value": 8.0,  # (7 + 8 + 9) / 3
        "avg_last_digit_sum": 16.33,  # (19 + 12 + 18) / 3
        "avg_total_sum": 136.33,  # (99 + 152 + 158) / 3
    }


def test_machine_analysis_window_and_other_machine(hand_draws: list[Draw]) -> None:
    last_two = machine_analysis(hand_draws, 2, machine=1)
    assert last_two.analysis_period.model_dump() == {"total_rounds": 2, "start_round": 3, "end_round": 4}
    assert last_two.pattern_analysis.avg_ac_value == 8.5
    second = machine_analysis(hand_draws, 10, machine="2")
    assert second.analysis_period.total_rounds == 1
    assert second.pattern_analysis.avg_ac_value == 0.0
    assert second.number_frequency.most_frequent == [1, 2, 3, 4, 5]
    everything = machine_analysis(hand_draws, 100)
    assert everything.machine_type is None and everything.analysis_period.total_rounds == 4


def test_machine_analysis_empty_and_bad_rounds(hand_draws: list[Draw]) -> None:
    with pytest.raises(EmptyHistoryError, match="3호기"):
        machine_analysis(hand_draws, 50, machine=3)
    with pytest.raises(EmptyHistoryError):
        machine_analysis([], 50)
    with pytest.raises(ValueError):
        machine_analysis(hand_draws, 0, machine=1)


def test_machine_analysis_on_long_uniform_history_is_near_the_exact_baseline(history: list[Draw]) -> None:
    result = machine_analysis(history, 100_000)
    assert result.analysis_period.total_rounds == 1200
    p = result.pattern_analysis
    baseline = result.random_baseline
    assert abs(p.avg_odd_count - baseline["avg_odd_count"]) < 0.15
    assert abs(p.avg_ac_value - baseline["avg_ac_value"]) < 0.15
    assert abs(p.avg_total_sum - baseline["avg_total_sum"]) < 3.0
    assert abs(p.avg_last_digit_sum - baseline["avg_last_digit_sum"]) < 1.0


def test_uniform_sum_distribution_is_exact() -> None:
    distribution = uniform_sum_distribution()
    assert sum(distribution) == pytest.approx(1.0)
    assert sum(s * p for s, p in enumerate(distribution)) == pytest.approx(138.0)
    assert distribution[21] == pytest.approx(float(Fraction(1, 8_145_060)))  # only 1+2+3+4+5+6
    assert (uniform_sum_quantile(0.10), uniform_sum_quantile(0.50), uniform_sum_quantile(0.90)) == (99, 138, 177)
