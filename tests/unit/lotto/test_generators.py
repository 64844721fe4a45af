from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from ml.lotto.confidence import ConfidenceEvidence, confidence_scores, no_evidence
from ml.lotto.draws import Draw, InvalidMachineType
from ml.lotto.generators import GenerateRequest, generate, generate_sets
from ml.lotto.sampling import sample_distinct_sets
from ml.lotto.statistics import EmptyHistoryError
from ml.lotto.strategies import number_model

ALGORITHMS = ("basic", "enhanced", "premium")
MACHINES = (1, 2, 3)


def _window(history: list[Draw], machine: int, size: int) -> list[Draw]:
    return [d for d in history if d.machine == machine][-size:]


def _counts(window: list[Draw]) -> Counter[int]:
    return Counter(n for d in window for n in d.numbers)


def _hot(window: list[Draw]) -> set[int]:
    counts = _counts(window)
    return set(sorted(range(1, 46), key=lambda n: (-counts[n], n))[:14])


def _ac(numbers: list[int]) -> int:
    return len({b - a for a, b in itertools.combinations(sorted(numbers), 2)}) - 5


def _check_explanation(lines: list[str], numbers: list[int], confidence: float, window: list[Draw]) -> None:
    """Every line must match a known template whose figures agree with the set."""
    odd = sum(n % 2 for n in numbers)
    high = sum(n >= 23 for n in numbers)
    counts = _counts(window)
    for line in lines:
        if m := re.search(r"모델 점수: ([\d.]+)% \(당첨 확률 아님", line):
            assert float(m.group(1)) == pytest.approx(round(confidence * 100, 1))
        elif m := re.search(r"평균 출현 ([\d.]+)회 \(번호당 기대 ([\d.]+)회\)", line):
            assert float(m.group(1)) == pytest.approx(round(np.mean([counts[n] for n in numbers]), 1), abs=0.051)
            assert float(m.group(2)) == pytest.approx(round(len(window) * 6 / 45, 1))
        elif m := re.search(r"이 세트의 고빈도 번호 (\d)개", line):
            assert int(m.group(1)) == len(_hot(window) & set(numbers))
        elif m := re.search(r"이 세트: 홀 (\d)/짝 (\d), 고 (\d)/저 (\d) \((균형 충족|균형 미충족)", line):
            seen = tuple(int(g) for g in m.groups()[:4])
            assert seen == (odd, 6 - odd, high, 6 - high)
            assert (m.group(5) == "균형 충족") == (2 <= odd <= 4 and 2 <= high <= 4)
        elif m := re.search(r"이 세트의 홀수 (\d)개", line):
            assert int(m.group(1)) == odd
        elif m := re.search(r"AC (\d+) \(≥7\), 합계 (\d+) \(범위 (\d+)–(\d+)\), 홀수 (\d)개 \(2~4\)", line):
            ac, total, low, high_sum, odd_seen = (int(g) for g in m.groups())
            assert ac == _ac(numbers) >= 7
            assert total == sum(numbers) and low <= total <= high_sum
            assert odd_seen == odd and 2 <= odd <= 4
        elif "1/8,145,060" in line or "빈도 모델 기반 생성" in line or "균등 무작위 생성" in line:
            continue
        else:
            raise AssertionError(f"unverified explanation line: {line!r}")


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sets_valid_distinct_sorted_and_explanations_true(history: list[Draw], machine: int, algorithm: str) -> None:
    for seed in range(5):
        result = generate_sets(
            history, f"{machine}호기", sets_count=20, algorithm=algorithm, analysis_window=50, rng=seed
        )
        assert result.machine_type == f"{machine}호기"
        assert len(result.predictions) == 20
        keys = {tuple(p.numbers) for p in result.predictions}
        assert len(keys) == 20
        window = _window(history, machine, 50)
        for index, prediction in enumerate(result.predictions, start=1):
            assert prediction.set_number == index
            assert prediction.numbers == sorted(prediction.numbers)
            assert len(set(prediction.numbers)) == 6 and all(1 <= n <= 45 for n in prediction.numbers)
            assert 0.0 <= prediction.confidence_score <= 1.0
            assert prediction.algorithm_used == result.metadata.algorithm
            _check_explanation(prediction.explanation, prediction.numbers, prediction.confidence_score, window)
            if algorithm == "basic":
                assert prediction.confidence_score == 0.5
            if algorithm == "premium":
                assert _ac(prediction.numbers) >= 7 and 2 <= sum(n % 2 for n in prediction.numbers) <= 4


def test_algorithm_names_and_metadata(history: list[Draw]) -> None:
    names = {m: generate_sets(history, m, sets_count=1, rng=0).metadata.algorithm for m in MACHINES}
    assert names == {1: "enhanced_ml_premium", 2: "enhanced_ml_balanced", 3: "enhanced_ml_creative"}
    meta = generate_sets(history, 1, sets_count=1, algorithm="premium", analysis_window=30, rng=0).metadata
    assert meta.algorithm == "enhanced_ml_premium_pattern_filtered"
    assert meta.analysis_window == 30 and meta.draws_analysed == 30
    assert {"number_frequency", "ac_value", "total_sum_range"} <= set(meta.features_used)
    assert meta.premium_filter is not None and meta.premium_filter["min_ac"] == 7
    assert "not a chance of winning" in meta.confidence_score_definition
    basic = generate_sets(history, 1, sets_count=1, algorithm="basic", rng=0)
    assert basic.metadata.algorithm == "basic_uniform_random"


def test_window_larger_than_history_uses_what_exists(hand_draws: list[Draw]) -> None:
    result = generate_sets(hand_draws, 1, sets_count=3, analysis_window=100, rng=0)
    assert result.metadata.draws_analysed == 3
    assert result.metadata.window_start_round == 1 and result.metadata.window_end_round == 4


def test_rng_is_injectable_and_deterministic(history: list[Draw]) -> None:
    a = generate_sets(history, 2, sets_count=5, rng=42)
    b = generate_sets(history, 2, sets_count=5, rng=np.random.default_rng(42))
    c = generate_sets(history, 2, sets_count=5, rng=43)
    assert a == b
    assert a != c


def test_request_validation_and_errors(history: list[Draw], hand_draws: list[Draw]) -> None:
    for bad in ({"sets_count": 0}, {"sets_count": 21}, {"analysis_window": 9}, {"analysis_window": 101},
                {"algorithm": "ultra"}):
        with pytest.raises(ValidationError):
            generate_sets(history, 1, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidMachineType):
        generate_sets(history, "4호기")
    with pytest.raises(EmptyHistoryError):
        generate_sets(hand_draws, 3, algorithm="enhanced")
    assert len(generate_sets([], 3, algorithm="basic", sets_count=4, rng=0).predictions) == 4
    request = GenerateRequest(machine_type="1%ED%98%B8%EA%B8%B0", sets_count=2)
    assert request.machine_type == "1호기" and request.algorithm == "enhanced" and request.analysis_window == 50
    assert len(generate(request, history, rng=1).predictions) == 2
    with pytest.raises(ValidationError):
        GenerateRequest(machine_type="1호기", unknown=1)  # type: ignore[call-arg]


def test_confidence_score_orders_sets_by_model_weight(history: list[Draw]) -> None:
    model = number_model(_window(history, 3, 50), 3)
    order = np.argsort(-model.weights)
    best = np.sort(order[:6] + 1)
    worst = np.sort(order[-6:] + 1)
    full = ConfidenceEvidence(source="test: full weight", held_out_draws=100, weight=1.0)
    scores = confidence_scores(np.array([best, worst]), model.probabilities(), full)
    assert scores[0] > 0.5 > scores[1]
    # without held-out evidence the same preference is not a score: both are exactly 0.5
    none = confidence_scores(np.array([best, worst]), model.probabilities(), no_evidence("test"))
    assert none.tolist() == [0.5, 0.5]


# -- the strategies are measurable --------------------------------------------------------------------------------


def _many_sets(history: list[Draw], machine: int, algorithm: str, total: int) -> np.ndarray:
    sets = []
    for seed in range(total // 20):
        result = generate_sets(history, machine, sets_count=20, algorithm=algorithm, analysis_window=50, rng=seed)
        sets.extend(p.numbers for p in result.predictions)
    return np.array(sets)


def _z(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))


def test_machine3_enhanced_holds_more_odd_numbers_than_basic(history: list[Draw]) -> None:
    enhanced = (_many_sets(history, 3, "enhanced", 2000) % 2).sum(axis=1)
    basic = (_many_sets(history, 3, "basic", 2000) % 2).sum(axis=1)
    assert enhanced.mean() > basic.mean()
    assert _z(enhanced, basic) > 2.5
    # and the +12 % itself, not the window's frequencies, is what moves it
    rng = np.random.default_rng(0)
    plain = number_model(_window(history, 3, 50), 3, apply_strategy=False)
    unboosted = np.array(sample_distinct_sets(plain.weights, 2000, rng))
    assert _z(enhanced, (unboosted % 2).sum(axis=1)) > 2.5


def test_machine1_enhanced_prefers_hot_numbers(history: list[Draw]) -> None:
    hot = np.array(sorted(_hot(_window(history, 1, 50))))
    enhanced = np.isin(_many_sets(history, 1, "enhanced", 2000), hot).sum(axis=1)
    basic = np.isin(_many_sets(history, 1, "basic", 2000), hot).sum(axis=1)
    plain = number_model(_window(history, 1, 50), 1, apply_strategy=False)
    unboosted = np.isin(np.array(sample_distinct_sets(plain.weights, 2000, np.random.default_rng(0))), hot).sum(axis=1)
    assert _z(enhanced, basic) > 2.5
    assert _z(enhanced, unboosted) > 2.0


def test_machine2_enhanced_prefers_balanced_sets(history: list[Draw]) -> None:
    def balanced(sets: np.ndarray) -> np.ndarray:
        odd = (sets % 2).sum(axis=1)
        high = (sets >= 23).sum(axis=1)
        return ((odd >= 2) & (odd <= 4) & (high >= 2) & (high <= 4)).astype(float)

    model = number_model(_window(history, 2, 50), 2)
    assert model.balance_boost == pytest.approx(1.20)
    boosted = balanced(np.array(sample_distinct_sets(
        model.weights, 10_000, np.random.default_rng(1), set_factor=model.set_factors, max_factor=model.max_set_factor
    )))
    plain = balanced(np.array(sample_distinct_sets(model.weights, 10_000, np.random.default_rng(2))))
    assert _z(boosted, plain) > 3.0
    # odds ratio balanced : unbalanced should be ≈ 1.2 × the unboosted one
    ratio = (boosted.mean() / (1 - boosted.mean())) / (plain.mean() / (1 - plain.mean()))
    assert 1.08 < ratio < 1.33
    enhanced = balanced(_many_sets(history, 2, "enhanced", 2000))
    basic = balanced(_many_sets(history, 2, "basic", 2000))
    assert enhanced.mean() > basic.mean()
