"""Held-out evaluation: the days every reported RL figure is measured on, and the comparison with greedy.

Three sets of days (a day is what ``EdgePlacementEnv.reset(seed=s)`` draws: its load trajectory and its
start placement):

============ ================================================ =====================================================
days         seeds                                            used for
============ ================================================ =====================================================
training     ``reset(seed=params.seed)``, then the same       fitting; ``params.seed`` ≤ ``MAX_TRAINING_SEED``
             generator continued (``reset()``)
validation   ``VALIDATION_SEED`` .. + ``VALIDATION_DAYS``−1   choosing hyperparameters, the best static placement,
             (10,000–10,019)                                  the benchmark's learning curve, the tests' thresholds
held-out     ``HELD_OUT_FIRST_SEED`` .. + ``HELD_OUT_DAYS``−1 reported figures only: task results, model metrics,
             (2,000,000,000–2,000,000,029)                    the benchmark's scores, the docs and README
============ ================================================ =====================================================

:func:`check_days_disjoint` asserts it for a training seed. On the held-out days, all on the same days:

* the agent (greedy actions), one episode per day;
* **random**: per day the mean of ``RANDOM_ROLLOUTS_PER_DAY`` uniformly random episodes, so the anchor of the
  score moves with the days, not with the random actions;
* **greedy**: the one-step lookahead of :class:`~ml.rl.baselines.GreedyPolicy`;
* **best static**: the placement :func:`~ml.rl.baselines.best_static_placement` found on the *validation* days,
  held all day on each held-out day; the **oracle** bound per day.

Figures: mean episode reward with a 95 % Student-t interval over days; the normalised score
``(agent − random) / (greedy − random)`` (0 = random, 1 = greedy) with a 95 % paired bootstrap interval over
days (days resampled together for agent, random and greedy); and against greedy, day by day: wins / ties /
losses, the win rate with a Wilson interval, the mean difference (agent − greedy, reward per day) with a 95 %
t-interval and the paired t-test's two-sided p-value. ``beats_greedy`` is true only when the interval of the
mean difference lies above 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ml.rl.baselines import (
    VALIDATION_DAYS,
    VALIDATION_SEED,
    DayFigures,
    GreedyPolicy,
    Policy,
    RandomPolicy,
    best_static_placement,
    oracle_day_rewards,
    play_days,
    static_placement_rewards,
)
from ml.rl.env import EdgePlacementEnv, Scenario, default_scenario
from schemas.rl import HELD_OUT_DAYS, HELD_OUT_FIRST_SEED, MAX_TRAINING_SEED

RANDOM_ROLLOUTS_PER_DAY: Final = 20
BOOTSTRAP_RESAMPLES: Final = 10_000
CONFIDENCE: Final = 0.95
_RANDOM_ACTION_SEED: Final = 0
_BOOTSTRAP_SEED: Final = 0

__all__ = [
    "HELD_OUT_DAYS",
    "HELD_OUT_FIRST_SEED",
    "MAX_TRAINING_SEED",
    "VALIDATION_DAYS",
    "VALIDATION_SEED",
    "HeldOutBaselines",
    "HeldOutEvaluation",
    "anchors",
    "check_days_disjoint",
    "evaluate_held_out",
    "held_out_baselines",
    "held_out_seeds",
    "validation_seeds",
]


def held_out_seeds() -> range:
    return range(HELD_OUT_FIRST_SEED, HELD_OUT_FIRST_SEED + HELD_OUT_DAYS)


def validation_seeds() -> range:
    return range(VALIDATION_SEED, VALIDATION_SEED + VALIDATION_DAYS)


def check_days_disjoint(training_seed: int) -> None:
    """Raise ValueError unless the training seed, the validation days and the held-out days are disjoint.

    Training plays ``reset(seed=training_seed)`` and then continues that generator, whose later days are not
    ``reset(seed=s)`` of any integer ``s`` (tests/unit/rl/test_evaluation.py compares the loads)."""
    held_out = held_out_seeds()
    if not 0 <= training_seed <= MAX_TRAINING_SEED or training_seed in held_out:
        raise ValueError(f"training seed {training_seed} is not in 0..{MAX_TRAINING_SEED} (held-out days follow)")
    overlap = set(validation_seeds()) & set(held_out)
    if overlap:
        raise ValueError(f"validation and held-out days overlap: {sorted(overlap)}")


# -- statistics over days -------------------------------------------------------------------------------------


def t_interval(values: NDArray[np.float64]) -> tuple[float, float]:
    """Student-t interval (``CONFIDENCE``) of the mean of independent per-day values."""
    n = values.shape[0]
    mean = float(values.mean())
    if n < 2:
        return (mean, mean)
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * float(values.std(ddof=1)) / math.sqrt(n)
    return (mean - half, mean + half)


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def score_with_interval(
    agent: NDArray[np.float64], random: NDArray[np.float64], greedy: NDArray[np.float64]
) -> tuple[float, tuple[float, float]]:
    """Normalised score over the days and its paired bootstrap interval (days resampled together)."""
    score = float((agent.mean() - random.mean()) / (greedy.mean() - random.mean()))
    rng = np.random.default_rng(_BOOTSTRAP_SEED)
    idx = rng.integers(0, agent.shape[0], size=(BOOTSTRAP_RESAMPLES, agent.shape[0]))
    a, r, g = agent[idx].mean(axis=1), random[idx].mean(axis=1), greedy[idx].mean(axis=1)
    gap = g - r
    scores = np.where(gap > 0, (a - r) / np.where(gap > 0, gap, 1.0), np.nan)
    low, high = np.nanquantile(scores, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return score, (float(low), float(high))


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """Agent against a reference policy, day by day on the same days."""

    wins: int
    ties: int
    losses: int
    win_rate: float
    win_rate_ci95: tuple[float, float]
    mean_difference: float
    mean_difference_ci95: tuple[float, float]
    p_value: float | None

    @classmethod
    def of(cls, agent: NDArray[np.float64], reference: NDArray[np.float64]) -> PairedComparison:
        diff = agent - reference
        tie = np.isclose(diff, 0.0, atol=1e-9)
        wins, ties = int(np.sum((diff > 0) & ~tie)), int(np.sum(tie))
        n = diff.shape[0]
        p_value: float | None = None
        if n >= 2 and float(diff.std(ddof=1)) > 0:
            p_value = float(stats.ttest_1samp(diff, 0.0).pvalue)
        return cls(
            wins=wins,
            ties=ties,
            losses=n - wins - ties,
            win_rate=wins / n,
            win_rate_ci95=wilson_interval(wins, n),
            mean_difference=float(diff.mean()),
            mean_difference_ci95=t_interval(diff),
            p_value=p_value,
        )

    @property
    def beats(self) -> bool:
        return self.mean_difference_ci95[0] > 0


# -- baselines and the agent on the held-out days -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldOutBaselines:
    """Random, greedy, best static (searched on validation days) and oracle, per held-out day."""

    scenario: str
    seeds: tuple[int, ...]
    random: NDArray[np.float64]
    greedy: DayFigures
    static_placement: tuple[int, ...]
    static_search_reward: float
    static: NDArray[np.float64]
    oracle: NDArray[np.float64]

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "days": len(self.seeds),
            "first_seed": self.seeds[0],
            "random_mean_reward": float(self.random.mean()),
            "random_rollouts_per_day": RANDOM_ROLLOUTS_PER_DAY,
            "greedy_mean_reward": float(self.greedy.rewards.mean()),
            "best_static": {
                "placement": list(self.static_placement),
                "searched_on": {"first_seed": VALIDATION_SEED, "days": VALIDATION_DAYS},
                "mean_reward_on_search_days": self.static_search_reward,
                "mean_reward": float(self.static.mean()),
            },
            "oracle_upper_bound": float(self.oracle.mean()),
        }


def anchors(seeds: Sequence[int], scenario: Scenario | None = None) -> tuple[NDArray[np.float64], DayFigures]:
    """The score's anchors on ``seeds``: random (per day, the mean of ``RANDOM_ROLLOUTS_PER_DAY`` episodes) and
    greedy (per day)."""
    env = EdgePlacementEnv(scenario=scenario)
    random_policy = RandomPolicy(int(env.action_space.n), seed=_RANDOM_ACTION_SEED)
    rollouts = [play_days(random_policy, env, seeds=seeds).rewards for _ in range(RANDOM_ROLLOUTS_PER_DAY)]
    return np.mean(rollouts, axis=0), play_days(GreedyPolicy(env), env, seeds=seeds)


def held_out_baselines(scenario: Scenario | None = None) -> HeldOutBaselines:
    """The reference policies on the held-out days (deterministic; about 2 s on the default scenario)."""
    scenario = scenario or default_scenario()
    seeds = held_out_seeds()
    random, greedy = anchors(seeds, scenario)
    static = best_static_placement(scenario)  # searched on the validation days
    return HeldOutBaselines(
        scenario=scenario.name,
        seeds=tuple(seeds),
        random=random,
        greedy=greedy,
        static_placement=static.placement,
        static_search_reward=static.mean_reward,
        static=static_placement_rewards(static.placement, scenario, seeds=seeds),
        oracle=oracle_day_rewards(scenario, seeds=seeds),
    )


@dataclass(frozen=True, slots=True)
class HeldOutEvaluation:
    """A policy on the held-out days beside the baselines of the same days (see the module doc)."""

    agent: DayFigures
    baselines: HeldOutBaselines

    @property
    def days(self) -> int:
        return len(self.agent.seeds)

    @property
    def score(self) -> tuple[float, tuple[float, float]]:
        return score_with_interval(self.agent.rewards, self.baselines.random, self.baselines.greedy.rewards)

    @property
    def vs_greedy(self) -> PairedComparison:
        return PairedComparison.of(self.agent.rewards, self.baselines.greedy.rewards)

    def verdict(self, name: str = "the agent") -> str:
        c = self.vs_greedy
        low, high = c.mean_difference_ci95
        figure = (
            f"{c.mean_difference:+.2f} reward per day against greedy [{low:+.2f}, {high:+.2f}] (95 % t-interval), "
            f"better on {c.wins} of {self.days} held-out days"
        )
        if c.beats:
            return f"{name} beats greedy on the held-out days: {figure}"
        if c.mean_difference_ci95[1] < 0:
            return f"{name} does NOT beat greedy: it is worse on the held-out days, {figure}"
        return f"{name} does NOT beat greedy: no difference shown on the held-out days, {figure}"

    def as_metrics(self) -> dict[str, Any]:
        """Flat figures for the model registry and the task status (rewards per day, latency in ms)."""
        score, (score_low, score_high) = self.score
        reward_low, reward_high = t_interval(self.agent.rewards)
        c = self.vs_greedy
        return {
            "mean_reward": round(float(self.agent.rewards.mean()), 4),
            "mean_reward_ci95_low": round(reward_low, 4),
            "mean_reward_ci95_high": round(reward_high, 4),
            "std_reward": round(float(self.agent.rewards.std()), 4),
            "normalised_score": round(score, 4),
            "normalised_score_ci95_low": round(score_low, 4),
            "normalised_score_ci95_high": round(score_high, 4),
            "latency": round(float(self.agent.latency_ms.mean()) / 1000.0, 6),
            "latency_ms": round(float(self.agent.latency_ms.mean()), 3),
            "cost": round(float(self.agent.cost.mean()), 4),
            "overload": round(float(self.agent.overload.mean()), 5),
            "random_mean_reward": round(float(self.baselines.random.mean()), 4),
            "greedy_mean_reward": round(float(self.baselines.greedy.rewards.mean()), 4),
            "vs_greedy_wins": c.wins,
            "vs_greedy_ties": c.ties,
            "vs_greedy_losses": c.losses,
            "vs_greedy_win_rate": round(c.win_rate, 4),
            "vs_greedy_win_rate_ci95_low": round(c.win_rate_ci95[0], 4),
            "vs_greedy_win_rate_ci95_high": round(c.win_rate_ci95[1], 4),
            "vs_greedy_mean_difference": round(c.mean_difference, 4),
            "vs_greedy_mean_difference_ci95_low": round(c.mean_difference_ci95[0], 4),
            "vs_greedy_mean_difference_ci95_high": round(c.mean_difference_ci95[1], 4),
            "vs_greedy_p_value": None if c.p_value is None else round(c.p_value, 6),
            "beats_greedy": c.beats,
            "evaluation_days": self.days,
            "evaluation_first_seed": self.agent.seeds[0],
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything, with the per-day rewards (agent, random, greedy) for anyone who wants to recompute."""
        return {
            "days": {"first_seed": self.agent.seeds[0], "count": self.days, "kind": "held-out"},
            "metrics": self.as_metrics(),
            "verdict": self.verdict(),
            "baselines": self.baselines.as_dict(),
            "per_day": {
                "agent": [round(float(x), 4) for x in self.agent.rewards],
                "random": [round(float(x), 4) for x in self.baselines.random],
                "greedy": [round(float(x), 4) for x in self.baselines.greedy.rewards],
            },
            "method": (
                f"{self.days} held-out days (seeds {self.agent.seeds[0]}..{self.agent.seeds[-1]}), never trained or "
                f"tuned on; random = mean of {RANDOM_ROLLOUTS_PER_DAY} random episodes per day; mean reward: "
                f"95 % t-interval over days; score: 95 % paired bootstrap over days ({BOOTSTRAP_RESAMPLES} "
                "resamples); vs greedy: per-day difference, 95 % t-interval, paired t-test, Wilson interval of "
                "the win rate"
            ),
        }


def evaluate_held_out(
    policy: Policy,
    env_or_scenario: EdgePlacementEnv | Scenario | None = None,
    *,
    baselines: HeldOutBaselines | None = None,
) -> HeldOutEvaluation:
    """``policy`` (an agent's ``act``) on the held-out days beside the baselines of the same days. Pass the
    environment when the policy reads it (as :class:`~ml.rl.baselines.GreedyPolicy` does)."""
    env = env_or_scenario if isinstance(env_or_scenario, EdgePlacementEnv) else EdgePlacementEnv(env_or_scenario)
    if baselines is None:
        baselines = held_out_baselines(env.scenario)
    elif baselines.scenario != env.scenario.name:
        raise ValueError(f"baselines are for scenario {baselines.scenario!r}, not {env.scenario.name!r}")
    agent = play_days(policy, env, seeds=baselines.seeds)
    return HeldOutEvaluation(agent=agent, baselines=baselines)
