"""Baselines: random and greedy policies, exhaustive static search, oracle bound, evaluation helper."""

from __future__ import annotations

import numpy as np
import pytest

from ml.rl.baselines import (
    VALIDATION_SEED,
    BaselineReport,
    GreedyPolicy,
    RandomPolicy,
    baseline_report,
    best_static_placement,
    evaluate_policy,
    normalised_score,
    oracle_upper_bound,
)
from ml.rl.env import EdgePlacementEnv, default_scenario


@pytest.fixture(scope="module")
def report() -> BaselineReport:
    return baseline_report(episodes=10)


def test_evaluate_policy_is_deterministic_and_reports_means() -> None:
    env = EdgePlacementEnv()
    a = evaluate_policy(RandomPolicy(9, seed=1), env, episodes=3)
    b = evaluate_policy(RandomPolicy(9, seed=1), EdgePlacementEnv(), episodes=3)
    assert a == b
    assert a.episodes == 3 and a.mean_steps == 48.0
    assert a.mean_latency_ms > 0 and a.mean_cost > 0 and 0 <= a.mean_overload <= 1
    c = evaluate_policy(RandomPolicy(9, seed=2), env, episodes=3)
    assert c.mean_reward != a.mean_reward
    with pytest.raises(ValueError):
        evaluate_policy(RandomPolicy(9), env, episodes=0)


def test_greedy_beats_random_by_far_and_the_oracle_bounds_everything(report: BaselineReport) -> None:
    # Measured on the default scenario (10 days from VALIDATION_SEED): random -313, greedy -173, static -191.
    assert report.greedy.mean_reward > report.random.mean_reward + 100.0
    assert report.greedy.mean_overload < 0.02 < report.random.mean_overload
    assert report.oracle_upper_bound >= report.greedy.mean_reward
    assert report.oracle_upper_bound >= report.best_static.mean_reward
    assert report.best_static.placements_searched == 5 * 3 * 3 * 4
    # the placement must move during the day: the best fixed placement is clearly worse than greedy
    assert report.greedy.mean_reward > report.best_static.mean_reward + 5.0


def test_best_static_placement_is_the_argmax_over_all_placements() -> None:
    best = best_static_placement(episodes=2)
    env = EdgePlacementEnv()
    noop = 0

    def hold(placement: tuple[int, ...]) -> float:
        total = 0.0
        for i in range(2):
            env.reset(seed=VALIDATION_SEED + i, options={"initial_replicas": list(placement)})
            done = False
            while not done:
                _, r, term, trunc, _ = env.step(noop)
                total += r
                done = term or trunc
        return total / 2

    assert hold(best.placement) == pytest.approx(best.mean_reward)
    for other in [(4, 2, 2, 3), (1, 1, 1, 1), (3, 0, 2, 2)]:
        assert hold(other) <= best.mean_reward + 1e-9


def test_oracle_bound_is_not_beaten_by_greedy_on_any_single_day() -> None:
    env = EdgePlacementEnv()
    for i in range(3):
        greedy = evaluate_policy(GreedyPolicy(env), env, episodes=1, seed=VALIDATION_SEED + i).mean_reward
        assert oracle_upper_bound(episodes=1, seed=VALIDATION_SEED + i) >= greedy


def test_greedy_policy_picks_the_best_one_step_action() -> None:
    env = EdgePlacementEnv()
    obs, _ = env.reset(seed=0, options={"initial_replicas": [0, 0, 0, 0]})
    action = GreedyPolicy(env)(obs)
    assert 1 <= action <= 4  # with no replica at all, adding one anywhere beats everything else
    loads = env.model.expected_loads(1)
    rewards = [
        env.model.serve_one(env.model.apply_action(env.replicas, a)[0], loads).reward(env.scenario.weights)
        for a in range(1, 5)
    ]
    assert action == 1 + int(np.argmax(rewards))


def test_normalised_score() -> None:
    assert normalised_score(-100.0, -300.0, -100.0) == pytest.approx(1.0)
    assert normalised_score(-300.0, -300.0, -100.0) == pytest.approx(0.0)
    assert normalised_score(-120.0, -300.0, -100.0) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        normalised_score(-1.0, -100.0, -200.0)


def test_baselines_accept_another_scenario() -> None:
    scenario = default_scenario().model_copy(update={"episode_steps": 12})
    result = evaluate_policy(RandomPolicy(9), scenario, episodes=2)
    assert result.mean_steps == 12.0
