"""Tabular Q-learning on a discretised EdgePlacement observation (CleanRL-style: read top to bottom).

Discretisation (the "bins"), read from the environment's :class:`~ml.rl.env.ObservationLayout`:

* replica count of every node, exactly: ``round(obs[replicas_n] * max_replicas_n)`` in ``0..max_replicas_n``;
* time of day: ``time_bins`` equal buckets of the day-fraction feature (default 8, i.e. 3-hour buckets);
* load level: ``load_bins`` equal buckets of the mean normalised group load on [0, 1] (default 1 = not used,
  since the time of day already tells the daily load curve).

State index = mixed-radix number of those digits; the default scenario has 5*3*3*4 placements x 8 time buckets
= 1,440 states x 9 actions. The table is dense (numpy), initialised to ``initial_q``. The default -36 is about
what a good policy earns from a state of the default scenario (about -3.6 per step / (1 - 0.9)): better than the
true value of bad states, worse than that of good ones, so the agent keeps visiting what works while it explores.
0 would be wildly optimistic (every reward is negative) and keeps the greedy policy chasing untried actions for
thousands of episodes; on another scenario set it near (typical step reward) / (1 - discount_factor).

Update (one per environment step): ``Q[s, a] += learning_rate * (r + discount_factor * max_a' Q[s', a'] *
(1 - terminated) - Q[s, a])``. Episodes end by truncation (time limit), so the next state is bootstrapped.
Exploration: epsilon-greedy, epsilon linear from ``epsilon_start`` to ``epsilon_end`` over the first
``exploration_fraction`` of the episodes.

``batch_size`` and ``epochs`` come from the API document's common parameter set; tabular Q-learning updates
online, one transition at a time, so both are validated and stored but unused.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any, Self

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.base import ProgressCallback
from ml.rl.agent import (
    Agent,
    EpisodeAccumulator,
    EpisodeCallback,
    Reporter,
    linear_schedule,
    read_npz_artifact,
)
from ml.rl.env import EdgePlacementEnv, ObservationLayout, Scenario
from schemas.rl import QLearningParams


class Discretiser:
    """Maps an observation to a state index (see the module docstring)."""

    def __init__(self, layout: ObservationLayout, time_bins: int, load_bins: int) -> None:
        self.layout = layout
        self.time_bins = time_bins
        self.load_bins = load_bins
        self.levels = np.array(layout.max_replicas, dtype=np.int64)
        radices = [*(c + 1 for c in layout.max_replicas), time_bins, load_bins]
        self.multipliers = np.cumprod([1, *radices[:-1]]).astype(np.int64)
        self.n_states = int(np.prod(radices))

    def __call__(self, observations: NDArray[np.float32]) -> NDArray[np.int64]:
        lay = self.layout
        obs = np.atleast_2d(observations)
        replicas = np.rint(obs[:, lay.replicas] * self.levels).astype(np.int64)
        replicas = np.clip(replicas, 0, self.levels)
        t = np.clip((obs[:, lay.day_fraction] * self.time_bins).astype(np.int64), 0, self.time_bins - 1)
        mean_load = obs[:, lay.loads].mean(axis=1)
        load = np.clip((mean_load * self.load_bins).astype(np.int64), 0, self.load_bins - 1)
        digits = np.concatenate([replicas, t[:, None], load[:, None]], axis=1)
        return digits @ self.multipliers

    def one(self, observation: NDArray[np.float32]) -> int:
        """Scalar fast path of ``__call__`` for the training loop."""
        lay = self.layout
        index = 0
        mult = 1
        reps = observation[lay.replicas]
        for level, x in zip(lay.max_replicas, reps.tolist(), strict=True):
            index += min(max(round(x * level), 0), level) * mult
            mult *= level + 1
        index += min(max(int(observation[lay.day_fraction] * self.time_bins), 0), self.time_bins - 1) * mult
        mult *= self.time_bins
        mean_load = float(observation[lay.loads].mean())
        index += min(max(int(mean_load * self.load_bins), 0), self.load_bins - 1) * mult
        return index


class QLearningAgent(Agent):
    """Tabular Q-learning; ``params`` is a :class:`QLearningParams` or a dict of its fields."""

    model_type = "q_learning"
    params_model = QLearningParams
    params: QLearningParams

    def __init__(self, params: QLearningParams | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.layout: ObservationLayout | None = None
        self.discretiser: Discretiser | None = None
        self.q_table: NDArray[np.float64] | None = None

    def fit(
        self,
        env_or_scenario: gym.Env[Any, Any] | Scenario | None,
        total_episodes: int,
        *,
        progress: ProgressCallback | None = None,
        on_episode: EpisodeCallback | None = None,
    ) -> Self:
        p = self.params
        env = self._prepare(env_or_scenario, total_episodes)
        base = env.unwrapped
        if not isinstance(base, EdgePlacementEnv):
            raise TypeError("q_learning discretises the EdgePlacement observation layout; give it that environment")
        if self.layout is not None and self.layout != base.layout:
            raise ValueError("this agent was fitted on a scenario with another observation layout")
        self.layout = base.layout
        self.discretiser = Discretiser(base.layout, p.time_bins, p.load_bins)
        n_actions = int(env.action_space.n)
        if self.q_table is None:  # a second fit continues from the learned table
            self.q_table = np.full((self.discretiser.n_states, n_actions), p.initial_q, dtype=np.float64)
        q = self.q_table
        rng = np.random.default_rng(p.seed)
        reporter = Reporter(total_episodes, progress, on_episode)
        decay_episodes = p.exploration_fraction * total_episodes

        obs, _ = env.reset(seed=p.seed)
        for episode in range(total_episodes):
            epsilon = linear_schedule(p.epsilon_start, p.epsilon_end, decay_episodes, episode)
            state = self.discretiser.one(obs)
            acc = EpisodeAccumulator()
            td_errors = 0.0
            done = False
            while not done:
                if rng.random() < epsilon:
                    action = int(rng.integers(n_actions))
                else:
                    action = int(np.argmax(q[state]))
                obs, reward, terminated, truncated, info = env.step(action)
                next_state = self.discretiser.one(obs)
                target = float(reward) + (0.0 if terminated else p.discount_factor * float(q[next_state].max()))
                td = target - q[state, action]
                q[state, action] += p.learning_rate * td
                td_errors += td * td
                acc.add(float(reward), info)
                state = next_state
                done = terminated or truncated
            self.training_episodes += 1
            stats = acc.stats(episode, loss=td_errors / max(acc.steps, 1), epsilon=epsilon)
            reporter.episode_done(stats)  # may raise TrainingCancelled: stop here and let it propagate
            obs, _ = env.reset()
        return self

    def predict(self, observations: ArrayLike) -> NDArray[np.int64]:
        batch = self._as_batch(observations)
        if self.discretiser is None or self.q_table is None:
            raise RuntimeError("QLearningAgent is not fitted")
        return np.argmax(self.q_table[self.discretiser(batch)], axis=1).astype(np.int64)

    def to_bytes(self) -> bytes:
        if self.layout is None or self.q_table is None:
            raise RuntimeError("QLearningAgent is not fitted")
        header = self._header()
        header["layout"] = {
            "n_nodes": self.layout.n_nodes,
            "n_groups": self.layout.n_groups,
            "max_replicas": list(self.layout.max_replicas),
        }
        buf = io.BytesIO()
        np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), q_table=self.q_table)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        header, arrays = read_npz_artifact(data)
        cls._check_header(header)
        q_table = np.asarray(arrays["q_table"], dtype=np.float64)
        agent = cls(header["params"])
        agent._restore_header(header)
        lay = header["layout"]
        agent.layout = ObservationLayout(
            n_nodes=int(lay["n_nodes"]), n_groups=int(lay["n_groups"]), max_replicas=tuple(lay["max_replicas"])
        )
        agent.discretiser = Discretiser(agent.layout, agent.params.time_bins, agent.params.load_bins)
        if q_table.shape != (agent.discretiser.n_states, agent.n_actions):
            raise ValueError(f"q_table shape {q_table.shape} does not match the stored layout")
        agent.q_table = q_table
        return agent
