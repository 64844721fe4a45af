"""EdgePlacement-v0: Gymnasium contract, determinism, routing, reward formula, scenario validation."""

from __future__ import annotations

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pydantic import ValidationError

import ml.rl
from ml.rl.env import (
    ENV_ID,
    EdgePlacementEnv,
    NodeSpec,
    RewardWeights,
    Scenario,
    ServiceSpec,
    UserGroupSpec,
    default_scenario,
)


def _rollout(env: EdgePlacementEnv, seed: int, actions: list[int]) -> list[tuple[np.ndarray, float, bool, dict]]:
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, False, info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated or truncated, info))
    return out


def test_check_env_passes_on_registered_env_without_warnings() -> None:
    env = gym.make(ENV_ID)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        check_env(gym.make(ENV_ID, render_mode="ansi").unwrapped, skip_render_check=False)
    assert [str(w.message) for w in caught] == []


def test_registration_is_idempotent_and_make_takes_a_scenario() -> None:
    importlib.reload(ml.rl)
    ml.rl.register_env()
    assert ENV_ID in gym.registry
    scenario = default_scenario().model_copy(update={"episode_steps": 5})
    env = gym.make(ENV_ID, scenario=scenario)
    env.reset(seed=0)
    steps = 0
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        steps += 1
        done = terminated or truncated
    assert steps == 5


def test_same_seed_same_actions_same_trajectory() -> None:
    actions = [int(a) for a in np.random.default_rng(7).integers(0, 9, size=48)]
    a = _rollout(EdgePlacementEnv(), 123, actions)
    b = _rollout(EdgePlacementEnv(), 123, actions)
    for (obs_a, r_a, d_a, i_a), (obs_b, r_b, d_b, i_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert r_a == r_b and d_a == d_b and i_a == i_b
    c = _rollout(EdgePlacementEnv(), 124, actions)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_constructor_seed_is_used_by_the_first_reset_only() -> None:
    env = EdgePlacementEnv(seed=5)
    first, _ = env.reset()
    again, _ = EdgePlacementEnv().reset(seed=5)
    np.testing.assert_array_equal(first, again)
    second, _ = env.reset()
    assert not np.array_equal(first, second)


def test_episode_is_fixed_length_truncated_and_observations_in_bounds() -> None:
    env = EdgePlacementEnv()
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (env.layout.size,) == (18,)
    rng = np.random.default_rng(0)
    flags = []
    while True:
        obs, _, terminated, truncated, info = env.step(int(rng.integers(9)))
        assert env.observation_space.contains(obs)
        assert {"latency_ms", "cost", "overload"} <= set(info)
        flags.append((terminated, truncated))
        if terminated or truncated:
            break
    assert len(flags) == 48
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_reward_is_the_documented_formula() -> None:
    env = EdgePlacementEnv()
    w = env.scenario.weights
    env.reset(seed=3)
    for action in [1, 1, 5, 8, 0, 4, 4, 4, 4]:
        _, reward, _, _, info = env.step(action)
        expected = -(
            w.latency * info["latency_ms"]
            + w.cost * info["cost"]
            + w.overload * info["overload"]
            + w.invalid_action * float(info["invalid"])
        )
        assert reward == pytest.approx(expected, abs=1e-12)
        assert info["cost"] == pytest.approx(
            sum(r * n.cost_per_replica for r, n in zip(info["replicas"], env.scenario.nodes, strict=True))
        )


def test_actions_add_and_remove_replicas_and_invalid_ones_cost_a_penalty() -> None:
    env = EdgePlacementEnv()
    env.reset(seed=0, options={"initial_replicas": [0, 2, 1, 3]})
    _, _, _, _, info = env.step(1)  # add on metro-core
    assert info["replicas"] == [1, 2, 1, 3] and info["invalid"] is False
    _, _, _, _, info = env.step(2)  # add on north: already at its cap of 2
    assert info["replicas"] == [1, 2, 1, 3] and info["invalid"] is True
    _, _, _, _, info = env.step(4 + 3)  # remove from south
    assert info["replicas"] == [1, 2, 0, 3]
    _, _, _, _, info = env.step(4 + 3)  # remove from south again: nothing to remove
    assert info["replicas"] == [1, 2, 0, 3] and info["invalid"] is True
    with pytest.raises(ValueError):
        env.step(9)


def _two_node_scenario(**overrides: object) -> Scenario:
    base = {
        "nodes": (
            NodeSpec(name="near", cpu=2, ram_gb=4, bandwidth_mbps=1000, cost_per_replica=1.0),
            NodeSpec(name="far", cpu=8, ram_gb=16, bandwidth_mbps=1000, cost_per_replica=1.0),
        ),
        "groups": (UserGroupSpec(name="g", base_load=1.5, amplitude=0.0, latency_ms=(10.0, 50.0)),),
        "service": ServiceSpec(processing_ms=0.0),
        "load_noise_std": 0.0,
        "episode_steps": 3,
    }
    base.update(overrides)
    return Scenario.model_validate(base)


def test_routing_fills_the_nearest_node_then_spills_then_goes_to_the_cloud() -> None:
    env = EdgePlacementEnv(_two_node_scenario())
    model = env.model
    # near holds 1 replica = 1 load unit; the other 0.5 goes to far
    res = model.serve_one(np.array([1, 1]), np.array([1.5]))
    assert res.latency_ms == pytest.approx((1.0 * 10 + 0.5 * 50) / 1.5)
    assert res.overload == 0.0
    # no far replica: 0.5 units have no edge capacity -> cloud latency and overload
    res = model.serve_one(np.array([1, 0]), np.array([1.5]))
    assert res.overload == pytest.approx(0.5 / 1.5)
    assert res.latency_ms == pytest.approx((1.0 * 10 + 0.5 * env.scenario.cloud_latency_ms) / 1.5)


def test_bandwidth_limits_serving_capacity() -> None:
    scenario = default_scenario()
    env = EdgePlacementEnv(scenario)
    # north: 2 replicas could serve 2 units, 300 Mbit/s at 200 per unit allows only 1.5
    np.testing.assert_allclose(env.model.capacity(np.array([4, 2, 2, 3])), [4.0, 1.5, 2.0, 3.0])
    assert scenario.max_replicas() == [4, 2, 2, 3]


def test_scalar_and_vectorised_serve_agree() -> None:
    env = EdgePlacementEnv()
    model = env.model
    rng = np.random.default_rng(1)
    placements = model.all_placements()
    loads = rng.uniform(0.0, 3.0, size=(len(placements), model.n_groups))
    batch = model.serve(placements, loads)
    weights = env.scenario.weights
    for i in range(0, len(placements), 7):
        one = model.serve_one(placements[i], loads[i])
        assert one.latency_ms == pytest.approx(batch.latency_ms[i])
        assert one.overload == pytest.approx(batch.overload[i])
        assert one.cost == pytest.approx(batch.cost[i])
        np.testing.assert_allclose(one.utilisation, batch.utilisation[i])
        assert one.reward(weights) == pytest.approx(batch.reward(weights)[i])


def test_scenario_validation() -> None:
    with pytest.raises(ValidationError, match="latencies"):
        _two_node_scenario(groups=(UserGroupSpec(name="g", base_load=1.0, latency_ms=(1.0,)),))
    with pytest.raises(ValidationError, match="extra"):
        Scenario.model_validate({**default_scenario().model_dump(), "gpu": 1})
    with pytest.raises(ValidationError, match="initial_replicas"):
        _two_node_scenario(initial_replicas=(2, 0))  # near holds one replica at most
    with pytest.raises(ValidationError):
        RewardWeights(latency=-1.0)
    data = default_scenario().model_dump(mode="json")
    assert Scenario.model_validate(data) == default_scenario()
    assert EdgePlacementEnv(data).scenario == default_scenario()


def test_ansi_render() -> None:
    env = EdgePlacementEnv(render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    text = env.render()
    assert isinstance(text, str) and "metro-core" in text and "latency" in text
