"""Held-out evaluation: its days are disjoint from training and validation, and every reported figure is on them."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from pydantic import ValidationError

from consumers.rl.service import train_agent
from ml.rl import create_agent, load_agent, validate_params
from ml.rl.baselines import (
    VALIDATION_DAYS,
    VALIDATION_SEED,
    GreedyPolicy,
    best_static_placement,
    play_days,
    static_placement_rewards,
)
from ml.rl.env import EdgePlacementEnv
from ml.rl.evaluation import (
    HELD_OUT_DAYS,
    HELD_OUT_FIRST_SEED,
    MAX_TRAINING_SEED,
    HeldOutBaselines,
    PairedComparison,
    check_days_disjoint,
    evaluate_held_out,
    held_out_baselines,
    held_out_seeds,
    score_with_interval,
    validation_seeds,
)
from schemas import jobs
from schemas.common import utcnow


@pytest.fixture(scope="module")
def baselines() -> HeldOutBaselines:
    return held_out_baselines()


def _day(seed: int) -> np.ndarray:
    env = EdgePlacementEnv()
    env.reset(seed=seed)
    return np.concatenate([env.loads.ravel(), env.replicas.astype(np.float64)])


class DayRecorder(gym.Wrapper):  # type: ignore[type-arg]
    """Records every day an agent trains on (its load trajectory and start placement)."""

    def __init__(self, env: EdgePlacementEnv) -> None:
        super().__init__(env)
        self.days: list[np.ndarray] = []

    def reset(self, **kwargs: Any) -> Any:
        out = self.env.reset(**kwargs)
        inner = self.env.unwrapped
        self.days.append(np.concatenate([inner.loads.ravel(), inner.replicas.astype(np.float64)]))
        return out


def test_the_seed_ranges_are_disjoint() -> None:
    held_out, validation = set(held_out_seeds()), set(validation_seeds())
    assert len(held_out) == HELD_OUT_DAYS == 30 and len(validation) == VALIDATION_DAYS
    assert not held_out & validation
    assert MAX_TRAINING_SEED < min(held_out)  # an agent's first training day is reset(seed=params.seed)
    for model_type in ("q_learning", "dqn", "ppo"):
        assert validate_params(model_type, {"seed": MAX_TRAINING_SEED}).seed == MAX_TRAINING_SEED
        with pytest.raises(ValidationError):
            validate_params(model_type, {"seed": HELD_OUT_FIRST_SEED})
    check_days_disjoint(0)
    check_days_disjoint(MAX_TRAINING_SEED)
    with pytest.raises(ValueError):
        check_days_disjoint(HELD_OUT_FIRST_SEED + 3)


@pytest.mark.parametrize(
    ("model_type", "params"),
    [
        ("dqn", {"learning_starts": 48, "epochs": 1, "batch_size": 16}),
        ("ppo", {"rollout_episodes": 2, "epochs": 1}),
        ("q_learning", {}),
    ],
)
@pytest.mark.parametrize("seed", [0, MAX_TRAINING_SEED])
def test_no_training_day_is_a_held_out_or_validation_day(model_type: str, params: dict[str, Any], seed: int) -> None:
    """The days an agent actually trains on (seeded first day, then the same generator continued) are compared,
    load for load and start placement, with every held-out and validation day."""
    recorder = DayRecorder(EdgePlacementEnv())
    create_agent(model_type, {**params, "seed": seed}).fit(recorder, 12)
    assert len(recorder.days) >= 12
    reserved = [_day(s) for s in [*held_out_seeds(), *validation_seeds()]]
    for day in recorder.days:
        assert not any(np.array_equal(day, other) for other in reserved)
    assert np.array_equal(recorder.days[0], _day(seed))  # the first training day is reset(seed=params.seed)


def test_baselines_are_on_the_held_out_days_and_static_was_searched_elsewhere(baselines: HeldOutBaselines) -> None:
    assert baselines.seeds == tuple(held_out_seeds())
    env = EdgePlacementEnv()
    greedy = play_days(GreedyPolicy(env), env, seeds=held_out_seeds())
    np.testing.assert_allclose(baselines.greedy.rewards, greedy.rewards)
    searched = best_static_placement()  # on the validation days
    assert baselines.static_placement == searched.placement
    assert baselines.static_search_reward == pytest.approx(searched.mean_reward)
    np.testing.assert_allclose(
        baselines.static, static_placement_rewards(searched.placement, seeds=held_out_seeds())
    )
    # holding the placement from the first step through the environment gives the same day rewards
    for i in range(2):
        env.reset(seed=HELD_OUT_FIRST_SEED + i, options={"initial_replicas": list(searched.placement)})
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(0)
            total += r
            done = term or trunc
        assert total == pytest.approx(baselines.static[i])
    assert np.all(baselines.oracle >= baselines.greedy.rewards - 1e-9)
    assert baselines.greedy.rewards.mean() > baselines.random.mean() + 80.0


def test_the_reported_figures_are_computed_on_the_held_out_days(baselines: HeldOutBaselines) -> None:
    evaluation = evaluate_held_out(lambda obs: 0, baselines=baselines)  # doing nothing: a known, poor answer
    assert evaluation.agent.seeds == tuple(held_out_seeds())
    metrics = evaluation.as_metrics()
    assert metrics["evaluation_first_seed"] == HELD_OUT_FIRST_SEED and metrics["evaluation_days"] == 30
    noop = play_days(lambda obs: 0, seeds=held_out_seeds()).rewards
    assert metrics["mean_reward"] == pytest.approx(noop.mean(), abs=1e-3)
    assert metrics["greedy_mean_reward"] == pytest.approx(baselines.greedy.rewards.mean(), abs=1e-3)
    assert metrics["random_mean_reward"] == pytest.approx(baselines.random.mean(), abs=1e-3)
    assert metrics["vs_greedy_losses"] == 30 and not metrics["beats_greedy"]
    assert "does NOT beat greedy" in evaluation.verdict()
    env = EdgePlacementEnv()
    itself = evaluate_held_out(GreedyPolicy(env), env, baselines=baselines).as_metrics()
    assert itself["normalised_score"] == pytest.approx(1.0) and itself["vs_greedy_ties"] == 30
    assert itself["vs_greedy_mean_difference"] == 0.0 and not itself["beats_greedy"]


def test_the_training_task_reports_held_out_figures() -> None:
    """consumers.rl.train_agent (the API task's runner): its metrics are the artifact's held-out figures."""
    command = jobs.TrainRequested(
        job_id="job_test",
        domain="rl",
        model_type="q_learning",
        spec={"name": "held-out", "total_episodes": 3, "parameters": {"seed": 5}},
        estimated_duration_minutes=0.1,
        submitted_at=utcnow(),
    )
    outcome = train_agent("mongodb://unused", "unused", command, lambda pct, figures: None)
    metrics, result = outcome.metrics, outcome.result
    assert metrics["evaluation_first_seed"] == HELD_OUT_FIRST_SEED and metrics["evaluation_days"] == HELD_OUT_DAYS
    agent = load_agent(outcome.artifact)
    rewards = play_days(agent.act, seeds=held_out_seeds()).rewards
    assert metrics["mean_reward"] == pytest.approx(rewards.mean(), abs=1e-3)
    assert result["held_out"]["per_day"]["agent"] == pytest.approx(rewards.tolist(), abs=1e-3)
    assert result["verdict"].startswith("q_learning does NOT beat greedy")
    for key in ("vs_greedy_win_rate", "vs_greedy_mean_difference", "vs_greedy_mean_difference_ci95_low",
                "vs_greedy_mean_difference_ci95_high", "normalised_score_ci95_low", "normalised_score_ci95_high"):
        assert key in metrics
    lineage = outcome.lineage["evaluation"]
    assert lineage["first_seed"] == HELD_OUT_FIRST_SEED and lineage["training_seed"] == 5


def test_interval_statistics() -> None:
    agent = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    reference = np.array([0.0, 2.0, 4.0, 3.0, 3.0])
    c = PairedComparison.of(agent, reference)
    assert (c.wins, c.ties, c.losses) == (3, 1, 1) and c.win_rate == 0.6
    assert c.mean_difference == pytest.approx(0.6)
    low, high = c.mean_difference_ci95
    assert low < 0.6 < high and c.p_value is not None and c.p_value > 0.05 and not c.beats
    random = np.array([-10.0, -11.0, -9.0, -10.0, -10.0])
    greedy = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
    score, (s_low, s_high) = score_with_interval(np.full(5, -1.0), random, greedy)
    assert score == pytest.approx(0.9) and s_low <= 0.9 <= s_high
    assert VALIDATION_SEED == 10_000
