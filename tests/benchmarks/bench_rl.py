"""RL benchmark: environment speed, and wall time to the greedy baseline for our DQN/PPO against Stable-Baselines3.

Run: ``python -m tests.benchmarks.bench_rl [out_path] [--quick]`` (default ``bench-results/rl.json``).
Needs ``stable-baselines3`` (the ``bench`` extra); without it the SB3 runs are reported as skipped.

Figures written:

* ``env``: steps per second of ``EdgePlacementEnv`` with uniformly random actions, bare and through
  ``gymnasium.make`` (with its checker and order-enforcing wrappers); the greedy policy's decisions per second.
* ``baselines``: random and greedy mean reward on the validation days (the learning curve's anchors) and on the
  held-out days (the reported scores' anchors), and the two targets derived from the validation anchors.
* ``runs``: one per (budget, algorithm, implementation). Each trains on the default scenario, seed 0, one torch
  thread, for a fixed episode budget: ``short`` = the unit tests' budgets (DQN 150 episodes, PPO 200), ``long`` =
  DQN 1000, PPO 600 (schedules such as epsilon decay and learning-rate annealing stretch with the budget, so the
  two are different runs, not one run observed longer). Every ``EVAL_EVERY`` episodes the clock stops and the
  greedy (deterministic) policy is evaluated on ``CURVE_DAYS`` **validation** days: the learning curve. A run
  records the *training* wall time (evaluations excluded) and episodes at which its validation score first
  reached each target, where ``score = (reward - random) / (greedy - random)``: ``0.9`` (90 % of greedy's
  improvement over random) and ``1.0`` (the greedy baseline's reward itself). Because the curve is a selection on
  the validation days, no score is reported from it: when a target is first reached, and at the end of the run,
  the agent is evaluated on the 30 **held-out** days (``ml.rl.evaluation``: score with its bootstrap interval,
  mean difference to greedy with its t-interval, days won), and those are the reported figures.
  A run stops when both targets are reached, when the budget is spent, or after ``TIME_CAP_S`` seconds of
  training; a target not reached is reported as ``null`` with ``"reached": false``.
  Implementations: ``modelbus`` (ours, default params); ``sb3-matched`` (Stable-Baselines3 with our
  hyperparameters: same learning rate, discount, batch, network size, exploration schedule, update cadence and
  reward scale 0.1 through a ``TransformReward`` wrapper); ``sb3-defaults`` (Stable-Baselines3's own defaults,
  same step budget, long budget only). Each modelbus and sb3-matched run is repeated (same seed, so the same
  curve) and the fastest wall time kept, after a warm-up that takes torch's one-off costs out of the first run.
* ``ratios_modelbus_over_sb3_matched``: per budget and algorithm, our training time to each target divided by
  SB3-matched's (below 1 = we are faster), or ``null`` when either side did not reach it.

The machine is shared: ``load_average`` before and after is recorded because wall times move with it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ml.base import TrainingCancelled
from ml.rl import ENV_ID
from ml.rl.agent import EpisodeStats
from ml.rl.baselines import VALIDATION_SEED, GreedyPolicy, Policy, play_days
from ml.rl.dqn import DQNAgent, DQNParams
from ml.rl.env import EdgePlacementEnv
from ml.rl.evaluation import (
    HELD_OUT_DAYS,
    HELD_OUT_FIRST_SEED,
    RANDOM_ROLLOUTS_PER_DAY,
    HeldOutBaselines,
    anchors,
    evaluate_held_out,
    held_out_baselines,
)
from ml.rl.ppo import PPOAgent, PPOParams

DEFAULT_OUT = Path("bench-results/rl.json")
CURVE_DAYS = 10
EVAL_EVERY = 10
TIME_CAP_S = 180.0
TARGETS = (0.9, 1.0)
BUDGETS = {"short": {"dqn": 150, "ppo": 200}, "long": {"dqn": 1000, "ppo": 600}}
SEED = 0
CURVE_SEEDS = range(VALIDATION_SEED, VALIDATION_SEED + CURVE_DAYS)


# -- environment speed ---------------------------------------------------------------------------------------


def bench_env(steps: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 9, size=steps).tolist()
    out: dict[str, Any] = {"steps": steps}
    for name, env in (("bare", EdgePlacementEnv()), ("gymnasium_make", gym.make(ENV_ID))):
        env.reset(seed=0)
        started = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        out[f"{name}_steps_per_s"] = round(steps / (time.perf_counter() - started))
    env = EdgePlacementEnv()
    greedy = GreedyPolicy(env)
    obs, _ = env.reset(seed=0)
    n = max(steps // 10, 100)
    started = time.perf_counter()
    for _ in range(n):
        obs, _, terminated, truncated, _ = env.step(greedy(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    out["greedy_policy_steps_per_s"] = round(n / (time.perf_counter() - started))
    return out


# -- time to target ------------------------------------------------------------------------------------------


def held_out_figures(policy: Policy, baselines: HeldOutBaselines) -> dict[str, Any]:
    """The reported figures of a policy: the held-out days' score and comparison with greedy."""
    m = evaluate_held_out(policy, baselines=baselines).as_metrics()
    keys = (
        "mean_reward",
        "normalised_score",
        "normalised_score_ci95_low",
        "normalised_score_ci95_high",
        "vs_greedy_wins",
        "vs_greedy_mean_difference",
        "vs_greedy_mean_difference_ci95_low",
        "vs_greedy_mean_difference_ci95_high",
        "beats_greedy",
    )
    return {k: m[k] for k in keys}


@dataclass
class Tracker:
    """Training clock that stops during evaluations, the validation curve, and held-out figures at the targets."""

    evaluate: Callable[[], float]
    held_out: Callable[[], dict[str, Any]]
    random_reward: float
    greedy_reward: float
    budget_episodes: int
    train_s: float = 0.0
    episodes: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    reached: dict[str, dict[str, float] | None] = field(default_factory=lambda: {str(t): None for t in TARGETS})
    stop_reason: str = "budget"
    _since: float = field(default_factory=time.perf_counter)

    def start(self) -> None:
        self._since = time.perf_counter()

    def episode_done(self) -> bool:
        """Count an episode; evaluate on schedule. Returns False when training should stop."""
        self.train_s += time.perf_counter() - self._since
        self.episodes += 1
        keep_going = True
        if self.episodes % EVAL_EVERY == 0 or self.episodes == self.budget_episodes:
            reward = self.evaluate()
            score = (reward - self.random_reward) / (self.greedy_reward - self.random_reward)
            point = {"episodes": self.episodes, "train_s": round(self.train_s, 2), "reward": round(reward, 2)}
            self.curve.append({**point, "score": round(score, 3)})
            for t in TARGETS:
                if self.reached[str(t)] is None and score >= t:
                    self.reached[str(t)] = {**point, "validation_score": round(score, 3), "held_out": self.held_out()}
            if all(v is not None for v in self.reached.values()):
                self.stop_reason, keep_going = "all targets reached", False
        if keep_going and self.train_s > TIME_CAP_S:
            self.stop_reason, keep_going = f"time cap {TIME_CAP_S:.0f} s", False
        self._since = time.perf_counter()
        return keep_going

    def result(self) -> dict[str, Any]:
        scores = [p["score"] for p in self.curve]
        return {
            "episodes": self.episodes,
            "train_s": round(self.train_s, 2),
            "stop_reason": self.stop_reason,
            "final_validation_score": scores[-1] if scores else None,
            "held_out": self.held_out(),
            "targets": {
                t: ({"reached": True, **p} if p is not None else {"reached": False}) for t, p in self.reached.items()
            },
            "curve": self.curve,
        }


class _Stop(TrainingCancelled):
    pass


def _curve_reward(policy: Policy, env: EdgePlacementEnv) -> float:
    return float(play_days(policy, env, seeds=CURVE_SEEDS).rewards.mean())


def run_ours(algo: str, base: tuple[float, float], budget: int, held: HeldOutBaselines) -> dict[str, Any]:
    agent: DQNAgent | PPOAgent = DQNAgent(seed=SEED) if algo == "dqn" else PPOAgent(seed=SEED)
    eval_env = EdgePlacementEnv()
    tracker = Tracker(
        evaluate=lambda: _curve_reward(agent.act, eval_env),
        held_out=lambda: held_out_figures(agent.act, held),
        random_reward=base[0],
        greedy_reward=base[1],
        budget_episodes=budget,
    )

    def on_episode(stats: EpisodeStats) -> None:
        if not tracker.episode_done():
            raise _Stop

    tracker.start()
    try:
        agent.fit(None, budget, on_episode=on_episode)
    except _Stop:
        pass
    return {"implementation": "modelbus", "algorithm": algo, "params": agent.params.model_dump(), **tracker.result()}


def run_sb3(
    algo: str, base: tuple[float, float], budget: int, held: HeldOutBaselines, *, matched: bool
) -> dict[str, Any]:
    try:
        import stable_baselines3 as sb3
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        return {"implementation": "sb3-matched" if matched else "sb3-defaults", "algorithm": algo, "skipped": True}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env: gym.Env[Any, Any] = EdgePlacementEnv()
        kwargs: dict[str, Any] = {"seed": SEED, "device": "cpu", "verbose": 0}
        if algo == "dqn":
            p = DQNParams()
            if matched:
                env = gym.wrappers.TransformReward(env, lambda r: p.reward_scale * r)
                kwargs |= {
                    "learning_rate": p.learning_rate,
                    "gamma": p.discount_factor,
                    "batch_size": p.batch_size,
                    "buffer_size": p.buffer_size,
                    "learning_starts": p.learning_starts,
                    "train_freq": (1, "episode"),
                    "gradient_steps": p.epochs,
                    # ours: every 25 gradient steps = every 100 environment steps at 12 per 48-step episode
                    "target_update_interval": p.target_update_interval * 48 // p.epochs,
                    "tau": p.tau,
                    "exploration_fraction": p.exploration_fraction,
                    "exploration_initial_eps": p.epsilon_start,
                    "exploration_final_eps": p.epsilon_end,
                    "max_grad_norm": p.max_grad_norm,
                    "policy_kwargs": {"net_arch": [p.hidden_size, p.hidden_size]},
                }
            model = sb3.DQN("MlpPolicy", env, **kwargs)
            params = {k: v for k, v in kwargs.items() if k not in ("seed", "device", "verbose")}
        else:
            q = PPOParams()
            if matched:
                env = gym.wrappers.TransformReward(env, lambda r: q.reward_scale * r)
                lr = q.learning_rate
                kwargs |= {
                    "learning_rate": lambda remaining: lr * remaining,  # linear anneal, like ours
                    "n_steps": q.rollout_episodes * 48,
                    "batch_size": q.batch_size,
                    "n_epochs": q.epochs,
                    "gamma": q.discount_factor,
                    "gae_lambda": q.gae_lambda,
                    "clip_range": q.clip_coef,
                    "ent_coef": q.ent_coef,
                    "vf_coef": q.vf_coef,
                    "max_grad_norm": q.max_grad_norm,
                    "policy_kwargs": {"net_arch": {"pi": [q.hidden_size] * 2, "vf": [q.hidden_size] * 2}},
                }
            model = sb3.PPO("MlpPolicy", env, **kwargs)
            params = {k: (v if not callable(v) else "linear anneal") for k, v in kwargs.items()}
            params = {k: v for k, v in params.items() if k not in ("seed", "device", "verbose")}

        eval_env = EdgePlacementEnv()

        def act(obs: np.ndarray) -> int:
            action, _ = model.predict(obs, deterministic=True)
            return int(action)

        tracker = Tracker(
            evaluate=lambda: _curve_reward(act, eval_env),
            held_out=lambda: held_out_figures(act, held),
            random_reward=base[0],
            greedy_reward=base[1],
            budget_episodes=budget,
        )

        class Callback(BaseCallback):  # type: ignore[misc]
            def _on_training_start(self) -> None:
                tracker.start()

            def _on_step(self) -> bool:
                keep_going = True
                for done in self.locals["dones"]:
                    if done:
                        keep_going = tracker.episode_done() and keep_going
                return keep_going

        model.learn(total_timesteps=budget * 48, callback=Callback())
        return {
            "implementation": "sb3-matched" if matched else "sb3-defaults",
            "algorithm": algo,
            "params": json.loads(json.dumps(params, default=str)),
            **tracker.result(),
        }
    finally:
        torch.set_num_threads(threads)


def _repeat(run: Callable[[], dict[str, Any]], repeats: int) -> dict[str, Any]:
    """Run ``repeats`` times (same seed, so the same learning curve) and keep the fastest wall times.

    The machine is shared, so wall time is noisy; the minimum is the least disturbed measurement.
    """
    results = [run() for _ in range(repeats)]
    first = results[0]
    if first.get("skipped"):
        return first
    first["repeats"] = repeats
    first["same_curve_every_repeat"] = all(
        [p["reward"] for p in r["curve"]] == [p["reward"] for p in first["curve"]] for r in results
    )
    first["train_s_repeats"] = [r["train_s"] for r in results]
    first["train_s"] = min(first["train_s_repeats"])
    for target, point in first["targets"].items():
        if point["reached"]:
            times = [r["targets"][target]["train_s"] for r in results if r["targets"][target]["reached"]]
            point["train_s_repeats"] = times
            point["train_s"] = min(times)
    return first


def _warm_up() -> None:
    """One-off costs (lazy torch initialisation, first optimiser step...) must not land in the first timed run."""
    DQNAgent(seed=SEED, learning_starts=48, epochs=2).fit(None, 2)
    PPOAgent(seed=SEED, rollout_episodes=1).fit(None, 2)
    try:
        import stable_baselines3 as sb3
    except ImportError:
        return
    sb3.DQN("MlpPolicy", EdgePlacementEnv(), learning_starts=48, device="cpu", seed=SEED).learn(96)
    sb3.PPO("MlpPolicy", EdgePlacementEnv(), n_steps=96, batch_size=48, device="cpu", seed=SEED).learn(96)


def _ratio(ours: dict[str, Any], theirs: dict[str, Any], target: str) -> dict[str, Any]:
    a, b = ours["targets"][target], theirs.get("targets", {}).get(target, {"reached": False})
    if not a.get("reached") or not b.get("reached"):
        return {
            "ratio": None,
            "note": f"modelbus {'reached' if a.get('reached') else 'not reached'}, "
            f"{theirs['implementation']} {'reached' if b.get('reached') else 'not reached'}",
        }
    return {
        "ratio": round(a["train_s"] / b["train_s"], 3) if b["train_s"] > 0 else None,
        "modelbus_s": a["train_s"],
        f"{theirs['implementation']}_s": b["train_s"],
        "modelbus_episodes": a["episodes"],
        f"{theirs['implementation']}_episodes": b["episodes"],
    }


def main(out_path: str | Path = DEFAULT_OUT, *, quick: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "rl",
        "when": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "quick": quick,
        "protocol": {
            "scenario": "default_scenario()",
            "seed": SEED,
            "curve": {"days": "validation", "first_seed": VALIDATION_SEED, "count": CURVE_DAYS},
            "reported": {"days": "held-out", "first_seed": HELD_OUT_FIRST_SEED, "count": HELD_OUT_DAYS},
            "random_rollouts_per_day": RANDOM_ROLLOUTS_PER_DAY,
            "eval_every_episodes": EVAL_EVERY,
            "time_cap_s": TIME_CAP_S,
            "targets": {"0.9": "90 % of greedy's improvement over random", "1.0": "greedy's reward"},
            "budgets_episodes": BUDGETS,
            "torch_threads": 1,
        },
    }
    try:
        import stable_baselines3

        result["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        result["stable_baselines3"] = None

    result["env"] = bench_env(5_000 if quick else 50_000)
    random_days, greedy_days = anchors(CURVE_SEEDS)
    random, greedy = float(random_days.mean()), float(greedy_days.rewards.mean())
    held = held_out_baselines()
    result["baselines"] = {
        "validation": {"random_reward": round(random, 2), "greedy_reward": round(greedy, 2)},
        "held_out": held.as_dict(),
        "target_rewards_validation": {str(t): round(random + t * (greedy - random), 2) for t in TARGETS},
    }
    base = (random, greedy)
    runs: list[dict[str, Any]] = []
    ratios: dict[str, Any] = {}
    repeats = 1 if quick else 2
    _warm_up()
    for budget_name, budgets in BUDGETS.items():
        if quick and budget_name != "short":
            continue
        for algo in ("dqn", "ppo"):
            budget = budgets[algo] // (5 if quick else 1)
            label = {"budget": budget_name}
            ours = label | _repeat(lambda: run_ours(algo, base, budget, held), repeats)  # noqa: B023 (called here)
            matched = label | _repeat(lambda: run_sb3(algo, base, budget, held, matched=True), repeats)  # noqa: B023
            runs += [ours, matched]
            if not quick and budget_name == "long":
                runs.append(label | _repeat(lambda: run_sb3(algo, base, budget, held, matched=False), 1))  # noqa: B023
            if not matched.get("skipped"):
                ratios.setdefault(budget_name, {})[algo] = {t: _ratio(ours, matched, t) for t in map(str, TARGETS)}
    result["runs"] = runs
    result["ratios_modelbus_over_sb3_matched"] = ratios
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def _summary(result: dict[str, Any]) -> str:
    lines = [f"env: {result['env']}", f"baselines: {result['baselines']}"]
    for run in result["runs"]:
        if run.get("skipped"):
            lines.append(f"{run['budget']:>5} {run['implementation']:>13} {run['algorithm']}: skipped")
            continue
        reached = {t: (v["train_s"] if v["reached"] else "not reached") for t, v in run["targets"].items()}
        h = run["held_out"]
        lines.append(
            f"{run['budget']:>5} {run['implementation']:>13} {run['algorithm']}: {run['episodes']} episodes, "
            f"{run['train_s']} s, time to validation target {reached}; held-out score {h['normalised_score']} "
            f"[{h['normalised_score_ci95_low']}, {h['normalised_score_ci95_high']}], vs greedy "
            f"{h['vs_greedy_mean_difference']:+.2f}/day, better on {h['vs_greedy_wins']} of {HELD_OUT_DAYS} days"
        )
    lines.append(f"ratios: {result['ratios_modelbus_over_sb3_matched']}")
    return "\n".join(lines)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(_summary(main(args[0] if args else DEFAULT_OUT, quick="--quick" in sys.argv)))
