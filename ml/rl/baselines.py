"""Reference policies and reference figures for EdgePlacement-v0.

* :class:`RandomPolicy`: uniform random actions (seeded).
* :class:`GreedyPolicy`: one-step lookahead. For each of the ``1 + 2N`` actions it computes the reward the
  resulting placement would get on the *noise-free expected* load of the next time slot (the daily profile an
  operator knows) and takes the best; ties go to the lower action index, so "no-op" wins ties.
* :func:`best_static_placement`: exhaustive search over every placement within the per-node caps
  (180 for the default scenario), each held for the whole episode, on the days it is given (the validation
  days by default; :mod:`ml.rl.evaluation` then scores the winner on the held-out days with
  :func:`static_placement_rewards`). A static placement starts in place (no moves needed), which a policy
  starting from a random placement cannot do, so this is a reference, not a bound.
* :func:`oracle_upper_bound`: for every time slot the best placement for that slot's *actual* (noisy) load,
  ignoring that a policy can move only one replica per step and cannot see the load before it acts. The reward
  depends only on (placement, load) plus a non-negative invalid-action penalty, so no policy can beat it.

:func:`evaluate_policy` runs any ``observation -> action`` callable over seeded episodes (:func:`play_days` gives
the per-day figures).

Days. A day is what ``EdgePlacementEnv.reset(seed=s)`` draws: the whole load trajectory and the start placement.
The defaults here are the **validation days** ``VALIDATION_SEED .. VALIDATION_SEED + VALIDATION_DAYS - 1``: the
days hyperparameters, thresholds and the best static placement were chosen on. They are not for reporting;
every reported figure is measured on the held-out days of :mod:`ml.rl.evaluation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.rl.env import EdgePlacementEnv, Scenario, default_scenario

VALIDATION_SEED = 10_000
"""First validation day (day i uses ``seed + i``): tuning, model selection, the unit tests' thresholds."""
VALIDATION_DAYS = 20

Policy = Callable[[NDArray[np.float32]], int]


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """Figures over ``episodes`` seeded episodes."""

    episodes: int
    mean_reward: float
    std_reward: float
    mean_steps: float
    mean_latency_ms: float
    mean_cost: float
    mean_overload: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


class RandomPolicy:
    """Uniformly random actions from a seeded generator."""

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n_actions = n_actions
        self._rng = np.random.default_rng(seed)

    def __call__(self, observation: NDArray[np.float32]) -> int:
        return int(self._rng.integers(self.n_actions))


class GreedyPolicy:
    """One-step lookahead on the expected next-slot load, reading the placement from ``env`` (see module doc)."""

    def __init__(self, env: EdgePlacementEnv) -> None:
        self.env = env

    def __call__(self, observation: NDArray[np.float32]) -> int:
        env = self.env
        model = env.model
        loads = model.expected_loads(env.slot + 1)
        weights = env.scenario.weights
        best_action, best_reward = 0, -np.inf
        for action in range(1 + 2 * model.n_nodes):
            placement, valid = model.apply_action(env.replicas, action)
            reward = float(model.serve_one(placement, loads).reward(weights, 0.0 if valid else 1.0))
            if reward > best_reward + 1e-12:
                best_action, best_reward = action, reward
        return best_action


def _as_env(env_or_scenario: EdgePlacementEnv | Scenario | None) -> EdgePlacementEnv:
    if isinstance(env_or_scenario, EdgePlacementEnv):
        return env_or_scenario
    return EdgePlacementEnv(scenario=env_or_scenario)


@dataclass(frozen=True, slots=True)
class DayFigures:
    """Per-day figures of one policy, in the order of ``seeds``: episode reward, steps and the step means."""

    seeds: tuple[int, ...]
    rewards: NDArray[np.float64]
    steps: NDArray[np.int64]
    latency_ms: NDArray[np.float64]
    cost: NDArray[np.float64]
    overload: NDArray[np.float64]


def play_days(
    policy: Policy, env_or_scenario: EdgePlacementEnv | Scenario | None = None, *, seeds: Sequence[int]
) -> DayFigures:
    """Play ``policy`` for one episode on each day ``reset(seed=s)``, ``s`` in ``seeds``."""
    if len(seeds) < 1:
        raise ValueError("episodes must be >= 1")
    env = _as_env(env_or_scenario)
    rewards, steps, latencies, costs, overloads = [], [], [], [], []
    for s in seeds:
        obs, _ = env.reset(seed=int(s))
        total, n, lat, cost, over = 0.0, 0, 0.0, 0.0, 0.0
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            total += float(reward)
            n += 1
            lat += info["latency_ms"]
            cost += info["cost"]
            over += info["overload"]
            done = terminated or truncated
        rewards.append(total)
        steps.append(n)
        latencies.append(lat / n)
        costs.append(cost / n)
        overloads.append(over / n)
    return DayFigures(
        seeds=tuple(int(s) for s in seeds),
        rewards=np.array(rewards),
        steps=np.array(steps, dtype=np.int64),
        latency_ms=np.array(latencies),
        cost=np.array(costs),
        overload=np.array(overloads),
    )


def evaluate_policy(
    policy: Policy,
    env_or_scenario: EdgePlacementEnv | Scenario | None = None,
    *,
    episodes: int = VALIDATION_DAYS,
    seed: int = VALIDATION_SEED,
) -> EvaluationResult:
    """Run ``policy`` for ``episodes`` episodes seeded ``seed, seed + 1, ...``; mean/std reward and means."""
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    days = play_days(policy, env_or_scenario, seeds=range(seed, seed + episodes))
    return EvaluationResult(
        episodes=episodes,
        mean_reward=float(np.mean(days.rewards)),
        std_reward=float(np.std(days.rewards)),
        mean_steps=float(np.mean(days.steps)),
        mean_latency_ms=float(np.mean(days.latency_ms)),
        mean_cost=float(np.mean(days.cost)),
        mean_overload=float(np.mean(days.overload)),
    )


def _day_loads(env: EdgePlacementEnv, seeds: Sequence[int]) -> NDArray[np.float64]:
    """Load of every slot after the first of each seeded day: shape (days, T, G)."""
    days = []
    for s in seeds:
        env.reset(seed=int(s))
        days.append(env.loads[1:].copy())
    return np.stack(days)


def _placement_rewards(env: EdgePlacementEnv, seeds: Sequence[int]) -> tuple[NDArray[np.int64], NDArray[Any]]:
    loads = _day_loads(env, seeds)  # (E, T, G)
    placements = env.model.all_placements()  # (P, N)
    result = env.model.serve(placements[:, None, None, :], loads[None])
    return placements, result.reward(env.scenario.weights)  # (P, E, T)


@dataclass(frozen=True, slots=True)
class StaticPlacement:
    placement: tuple[int, ...]
    mean_reward: float
    placements_searched: int


def best_static_placement(
    scenario: Scenario | None = None, *, episodes: int = VALIDATION_DAYS, seed: int = VALIDATION_SEED
) -> StaticPlacement:
    """Exhaustive search over static placements on days ``seed .. seed + episodes - 1`` (see module doc);
    ``mean_reward`` is measured on those same days, so it is the search's own (optimistic) figure."""
    env = EdgePlacementEnv(scenario=scenario)
    placements, rewards = _placement_rewards(env, range(seed, seed + episodes))
    per_placement = rewards.sum(axis=2).mean(axis=1)
    best = int(np.argmax(per_placement))
    return StaticPlacement(
        placement=tuple(int(x) for x in placements[best]),
        mean_reward=float(per_placement[best]),
        placements_searched=len(placements),
    )


def static_placement_rewards(
    placement: Sequence[int], scenario: Scenario | None = None, *, seeds: Sequence[int]
) -> NDArray[np.float64]:
    """Episode reward of holding ``placement`` all day (from the first step) on each day in ``seeds``."""
    env = EdgePlacementEnv(scenario=scenario)
    loads = _day_loads(env, seeds)
    held = np.asarray(placement, dtype=np.int64)[None, None, :]
    rewards: NDArray[np.float64] = env.model.serve(held, loads).reward(env.scenario.weights).sum(axis=1)
    return rewards


def oracle_day_rewards(scenario: Scenario | None = None, *, seeds: Sequence[int]) -> NDArray[np.float64]:
    """Per day, sum_t max_placement reward(placement, load_t): no policy exceeds it on that day."""
    env = EdgePlacementEnv(scenario=scenario)
    _, rewards = _placement_rewards(env, seeds)
    day_rewards: NDArray[np.float64] = rewards.max(axis=0).sum(axis=1)
    return day_rewards


def oracle_upper_bound(
    scenario: Scenario | None = None, *, episodes: int = VALIDATION_DAYS, seed: int = VALIDATION_SEED
) -> float:
    """Mean over the days of sum_t max_placement reward(placement, load_t): no policy exceeds it."""
    return float(oracle_day_rewards(scenario, seeds=range(seed, seed + episodes)).mean())


@dataclass(frozen=True, slots=True)
class BaselineReport:
    random: EvaluationResult
    greedy: EvaluationResult
    best_static: StaticPlacement
    oracle_upper_bound: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "random": self.random.as_dict(),
            "greedy": self.greedy.as_dict(),
            "best_static": asdict(self.best_static),
            "oracle_upper_bound": self.oracle_upper_bound,
        }


def baseline_report(
    scenario: Scenario | None = None, *, episodes: int = VALIDATION_DAYS, seed: int = VALIDATION_SEED
) -> BaselineReport:
    """Random, greedy, best static placement and the oracle bound on the same seeded days."""
    scenario = scenario or default_scenario()
    env = EdgePlacementEnv(scenario=scenario)
    n_actions = int(env.action_space.n)
    return BaselineReport(
        random=evaluate_policy(RandomPolicy(n_actions, seed=seed), env, episodes=episodes, seed=seed),
        greedy=evaluate_policy(GreedyPolicy(env), env, episodes=episodes, seed=seed),
        best_static=best_static_placement(scenario, episodes=episodes, seed=seed),
        oracle_upper_bound=oracle_upper_bound(scenario, episodes=episodes, seed=seed),
    )


def normalised_score(reward: float, random_reward: float, greedy_reward: float) -> float:
    """Improvement over random as a fraction of greedy's improvement over random (0 = random, 1 = greedy)."""
    gap = greedy_reward - random_reward
    if gap <= 0:
        raise ValueError("greedy does not beat random on this scenario; the score is undefined")
    return (reward - random_reward) / gap
