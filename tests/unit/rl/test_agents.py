"""Agent contract: act/predict, artifacts round trip, cancellation, seeding, no leaked torch state."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from ml.base import Estimator, TrainingCancelled
from ml.rl import AGENTS, create_agent, load_agent
from ml.rl.agent import Agent, EpisodeStats
from ml.rl.env import EdgePlacementEnv

TYPES = ["q_learning", "dqn", "ppo"]
# small, quick settings: these tests check the contract, not learning
QUICK: dict[str, dict[str, Any]] = {
    "q_learning": {},
    "dqn": {"learning_starts": 48, "epochs": 2, "batch_size": 16},
    "ppo": {"rollout_episodes": 2, "epochs": 1},
}


class CountingEnv(gym.Wrapper):  # type: ignore[type-arg]
    """Counts steps, to check where training stopped."""

    def __init__(self, env: gym.Env) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.steps = 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        return self.env.step(action)


def _observations(n: int = 64) -> np.ndarray:
    env = EdgePlacementEnv()
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=99)
    out = [obs]
    while len(out) < n:
        obs, _, term, trunc, _ = env.step(int(rng.integers(9)))
        out.append(obs)
        if term or trunc:
            obs, _ = env.reset()
    return np.stack(out)


@pytest.fixture(scope="module")
def fitted() -> dict[str, Agent]:
    return {t: create_agent(t, QUICK[t]).fit(None, 4) for t in TYPES}


@pytest.mark.parametrize("model_type", TYPES)
def test_follows_the_estimator_contract(model_type: str, fitted: dict[str, Agent]) -> None:
    agent = fitted[model_type]
    assert isinstance(agent, Estimator)
    assert agent.is_fitted and agent.training_episodes == 4
    obs = _observations()
    actions = agent.predict(obs)
    assert actions.shape == (len(obs),) and actions.dtype == np.int64
    assert np.all((0 <= actions) & (actions < 9))
    assert agent.act(obs[3]) == actions[3]
    assert isinstance(agent.act(obs[3]), int)
    assert agent.predict(obs[3]).shape == (1,)
    with pytest.raises(ValueError):
        agent.predict(np.zeros((2, 5), dtype=np.float32))


@pytest.mark.parametrize("model_type", TYPES)
def test_artifact_round_trip_gives_the_same_actions(model_type: str, fitted: dict[str, Agent]) -> None:
    agent = fitted[model_type]
    data = agent.to_bytes()
    obs = _observations(200)
    for restored in (AGENTS[model_type].from_bytes(data), load_agent(data), load_agent(data, model_type)):
        assert type(restored) is type(agent)
        assert restored.params == agent.params
        assert restored.training_episodes == agent.training_episodes
        np.testing.assert_array_equal(restored.predict(obs), agent.predict(obs))
    other = next(t for t in TYPES if t != model_type)
    with pytest.raises(ValueError):
        load_agent(data, other)
    with pytest.raises(ValueError):
        AGENTS[other].from_bytes(data)


@pytest.mark.parametrize("model_type", TYPES)
def test_unfitted_agent_refuses_to_act_or_serialise(model_type: str) -> None:
    agent = create_agent(model_type)
    with pytest.raises(RuntimeError):
        agent.act(np.zeros(18, dtype=np.float32))
    with pytest.raises(RuntimeError):
        agent.to_bytes()


@pytest.mark.parametrize("model_type", TYPES)
@pytest.mark.parametrize("cancel_at", [0, 2])
def test_cancel_from_on_episode_stops_within_that_episode(model_type: str, cancel_at: int) -> None:
    env = CountingEnv(EdgePlacementEnv())
    seen: list[EpisodeStats] = []

    def on_episode(stats: EpisodeStats) -> None:
        seen.append(stats)
        if stats.episode == cancel_at:
            raise TrainingCancelled("cancel requested")

    agent = create_agent(model_type, QUICK[model_type])
    with pytest.raises(TrainingCancelled, match="cancel requested"):
        agent.fit(env, 50, on_episode=on_episode)
    assert [s.episode for s in seen] == list(range(cancel_at + 1))
    assert env.steps == 48 * (cancel_at + 1)  # not one step into the next episode
    assert agent.training_episodes == cancel_at + 1


@pytest.mark.parametrize("model_type", TYPES)
def test_cancel_from_progress_propagates(model_type: str) -> None:
    calls: list[float] = []

    def progress(pct: float, figures: Any) -> None:
        calls.append(pct)
        assert {"episode", "reward", "steps", "latency_ms"} <= set(figures)
        raise TrainingCancelled

    env = CountingEnv(EdgePlacementEnv())
    with pytest.raises(TrainingCancelled):
        create_agent(model_type, QUICK[model_type]).fit(env, 50, progress=progress)
    assert len(calls) == 1 and env.steps == 48


def test_episode_stats_carry_the_documented_figures() -> None:
    seen: list[EpisodeStats] = []
    progress: list[float] = []
    agent = create_agent("dqn", {**QUICK["dqn"], "learning_starts": 60})
    agent.fit(None, 3, on_episode=seen.append, progress=lambda p, f: progress.append(p))
    assert [s.episode for s in seen] == [0, 1, 2]
    for s in seen:
        assert s.steps == 48 and s.reward < 0 and s.latency_ms > 0 and s.epsilon is not None
        assert set(s.as_dict()) >= {"episode", "reward", "steps", "latency_ms", "loss", "epsilon"}
    assert seen[0].loss is None and seen[1].loss is not None  # learning starts once 60 transitions are stored
    assert progress[-1] == 100.0


@pytest.mark.parametrize("model_type", TYPES)
def test_same_seed_same_agent_different_seed_different_agent(model_type: str) -> None:
    obs = _observations(200)
    a = create_agent(model_type, {**QUICK[model_type], "seed": 3}).fit(None, 3)
    b = create_agent(model_type, {**QUICK[model_type], "seed": 3}).fit(None, 3)
    c = create_agent(model_type, {**QUICK[model_type], "seed": 4}).fit(None, 3)
    np.testing.assert_array_equal(a.predict(obs), b.predict(obs))
    assert a.to_bytes() == b.to_bytes() or model_type != "q_learning"
    assert not np.array_equal(a.predict(obs), c.predict(obs))


def test_fit_leaves_torch_global_state_alone() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_agent("ppo", QUICK["ppo"]).fit(None, 2)
    create_agent("dqn", QUICK["dqn"]).fit(None, 2)
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.rand(3), expected)


def test_bad_arguments() -> None:
    agent = create_agent("dqn")
    with pytest.raises(ValueError):
        agent.fit(None, 0)
    with pytest.raises(TypeError):
        agent.fit("EdgePlacement", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Discrete"):
        agent.fit(gym.make("Pendulum-v1"), 1)
    with pytest.raises(TypeError, match="EdgePlacement"):
        create_agent("q_learning").fit(gym.make("CartPole-v1"), 1)
    with pytest.raises(ValueError):
        load_agent(b"not an artifact")
