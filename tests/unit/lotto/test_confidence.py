"""confidence_score: 0.5 = no different from a uniform random set; it moves only with held-out evidence."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pytest

from ml.lotto.backtest import backtest
from ml.lotto.confidence import (
    ConfidenceEvidence,
    confidence_scores,
    evidence_from_holdout,
    frequency_evidence,
    max_log_likelihood_ratio,
    set_log_likelihood_ratios,
)
from ml.lotto.draws import Draw, draws_for_machine, multi_hot
from ml.lotto.ensemble import ensemble_predict
from ml.lotto.generators import generate_sets
from ml.lotto.models import RANDOM_LOG_LOSS, LottoModel, log_loss
from ml.lotto.sampling import gumbel_top_k
from ml.lotto.strategies import number_model, rolling_probabilities

ALL = ["pytorch_transformer", "sklearn_ensemble", "enhanced_predictor"]
FULL = ConfidenceEvidence(source="test: no shrinkage", held_out_draws=100, weight=1.0)


def _biased_history(n: int = 1200, seed: int = 1) -> list[Draw]:
    """Draws that are NOT uniform: numbers 1–10 twice as likely (a model can have real evidence here)."""
    weights = np.ones(45)
    weights[:10] = 2.0
    sets = gumbel_top_k(weights, n, np.random.default_rng(seed))
    start = dt.date(2000, 1, 1)
    return [
        Draw(
            round=i + 1,
            date=start + dt.timedelta(weeks=i),
            numbers=tuple(int(x) for x in s),
            bonus=next(b for b in range(1, 46) if b not in s),
            machine=1 + i % 3,
        )
        for i, s in enumerate(sets)
    ]


def test_a_chance_level_generator_scores_centre_on_half(history: list[Draw]) -> None:
    """1,000 enhanced and 1,000 premium sets per machine on uniform draws: mean within ±0.05 of 0.5."""
    for algorithm in ("enhanced", "premium"):
        for machine in (1, 2, 3):
            scores = [
                p.confidence_score
                for seed in range(50)
                for p in generate_sets(history, machine, sets_count=20, algorithm=algorithm, rng=seed).predictions
            ]
            assert len(scores) == 1000
            assert abs(np.mean(scores) - 0.5) <= 0.05
            assert max(scores) < 0.7  # the seed's default ensemble threshold is not a bar a chance model clears


def test_a_chance_level_ensemble_scores_centre_on_half(fitted_models: Mapping[str, LottoModel],
                                                       history: list[Draw]) -> None:
    scores = []
    for seed in range(50):
        result = ensemble_predict(fitted_models, history, 2, sets_count=20, model_names=ALL,
                                  confidence_threshold=0.7, rng=seed)
        scores += [p.confidence_score for p in result.predictions]
    assert len(scores) == 1000
    assert abs(np.mean(scores) - 0.5) <= 0.05
    assert not result.metadata.threshold_met and not result.metadata.threshold_reachable


@pytest.mark.parametrize("name", ALL)
def test_a_near_uniform_model_is_not_stretched_even_without_shrinkage(fitted_models: Mapping[str, LottoModel],
                                                                      history: list[Draw], name: str) -> None:
    """The old percentile spread a model within 1e-3 of uniform over 0.05–0.95; the likelihood ratio does not."""
    p = fitted_models[name].predict(history)
    sets = gumbel_top_k(p, 1000, np.random.default_rng(0))
    scores = confidence_scores(sets, p, FULL)
    assert abs(scores.mean() - 0.5) <= 0.05
    uniform = np.full(45, 6 / 45)
    np.testing.assert_allclose(confidence_scores(sets, uniform, FULL), 0.5)


def test_the_set_log_likelihood_ratio_is_the_log_loss_difference(fitted_models: Mapping[str, LottoModel],
                                                                 history: list[Draw]) -> None:
    p = fitted_models["sklearn_ensemble"].predict(history)
    sets = gumbel_top_k(np.ones(45), 50, np.random.default_rng(3))
    llr = set_log_likelihood_ratios(sets, p)
    for s, value in zip(sets, llr, strict=True):
        y = np.zeros(45)
        y[s - 1] = 1
        assert value == pytest.approx(45 * (log_loss(np.full(45, 6 / 45), y) - log_loss(p, y)), abs=1e-6)
    # on any six-number draw the uniform predictor's log-loss is the baseline every member reports
    assert log_loss(np.full(45, 6 / 45), y) == pytest.approx(RANDOM_LOG_LOSS)
    top = np.sort(np.argsort(-p)[:6] + 1)
    assert max_log_likelihood_ratio(p) == pytest.approx(set_log_likelihood_ratios(top[None, :], p)[0])


def test_evidence_weight_is_zero_without_a_measured_gain() -> None:
    rng = np.random.default_rng(0)
    targets = multi_hot(_biased_history(200))
    uniform = np.full((200, 45), 6 / 45)
    assert evidence_from_holdout(uniform, targets, "uniform").weight == 0.0  # no claim, no weight
    wrong = np.full((200, 45), 6 / 45)
    wrong[:, 35:] = 0.3  # prefers 36–45 while 1–10 are drawn more: a held-out loss
    wrong = wrong / wrong.sum(axis=1, keepdims=True) * 6
    ev = evidence_from_holdout(wrong, targets, "wrong")
    assert ev.gain_per_draw is not None and ev.gain_per_draw < 0 and ev.weight == 0.0
    noise = np.clip(6 / 45 + rng.normal(0, 0.01, size=(200, 45)), 0.01, 0.99)
    noise = noise / noise.sum(axis=1, keepdims=True) * 6
    assert evidence_from_holdout(noise, multi_hot(_uniform(200)), "noise").weight == 0.0


def _uniform(n: int) -> list[Draw]:
    sets = gumbel_top_k(np.ones(45), n, np.random.default_rng(5))
    return [Draw(round=i + 1, date=dt.date(2000, 1, 1) + dt.timedelta(weeks=i), numbers=tuple(int(x) for x in s),
                 bonus=next(b for b in range(1, 46) if b not in s), machine=1) for i, s in enumerate(sets)]


def test_real_evidence_moves_the_score_and_the_weight_follows_the_formula() -> None:
    draws = _biased_history()
    right = np.full((300, 45), 6 / 45)
    right[:, :10] *= 2.0
    right = right / right.sum(axis=1, keepdims=True) * 6
    targets = multi_hot(draws[:300])
    ev = evidence_from_holdout(right, targets, "the true model")
    low = ev.gain_per_draw_ci95[0] if ev.gain_per_draw_ci95 else 0.0
    assert low > 0 and ev.p_value is not None and ev.p_value < 0.05
    assert ev.weight == pytest.approx(min(1.0, low / (ev.claimed_gain_per_draw or 1.0)), abs=1e-5)
    good = np.array([[1, 2, 3, 4, 5, 6]])
    bad = np.array([[40, 41, 42, 43, 44, 45]])
    assert confidence_scores(good, right[0], ev)[0] > 0.55 > 0.5 > confidence_scores(bad, right[0], ev)[0]


def test_the_generator_earns_weight_only_on_non_uniform_draws(history: list[Draw]) -> None:
    for machine in (1, 2, 3):
        on_uniform = frequency_evidence(draws_for_machine(history, machine), machine, 50)
        assert on_uniform.weight == 0.0 and on_uniform.held_out_draws > 300
    biased = _biased_history()
    result = generate_sets(biased, 3, sets_count=20, analysis_window=100, rng=0)
    evidence = result.metadata.confidence_evidence
    assert evidence is not None and evidence.weight > 0
    scores = [p.confidence_score for p in result.predictions]
    assert max(scores) - min(scores) > 0.05
    assert all("가중치" in p.explanation[-2] for p in result.predictions)


def test_rolling_forecasts_use_only_earlier_draws(history: list[Draw]) -> None:
    machine_draws = draws_for_machine(history, 1)
    rows = rolling_probabilities(machine_draws, 1, 50)
    for t in (1, 2, 50, 51, 200, len(machine_draws)):
        expected = number_model(machine_draws[max(0, t - 50):t], 1).probabilities()
        np.testing.assert_allclose(rows[t - 1], expected, rtol=1e-12)


def test_the_ensemble_threshold_needs_evidence(fitted_models: Mapping[str, LottoModel], history: list[Draw]) -> None:
    low = ensemble_predict(fitted_models, history, 1, sets_count=5, model_names=ALL, confidence_threshold=0.5, rng=0)
    assert low.metadata.threshold_met and all(p.confidence_score == 0.5 for p in low.predictions)
    evidence = low.metadata.confidence_evidence
    assert evidence.weight == 0.0 and evidence.held_out_draws > 0
    assert low.metadata.max_confidence_score == 0.5


def test_the_backtest_reports_one_test_at_a_stated_level(history: list[Draw]) -> None:
    result = backtest(history, 1, algorithm="basic", rounds=200, sets_per_round=5, rng=3)
    test = result.baseline_test
    assert test.level == 0.05 and test.statistic == "mean_matches" and test.p_value is not None
    assert result.baseline_within_ci == (not test.rejects_baseline) == (test.p_value >= 0.05)
    low, high = result.mean_matches_ci95
    assert (low <= 0.8 <= high) == result.baseline_within_ci
    assert test.difference_ci95[0] == pytest.approx(low - 0.8, abs=1e-3)
