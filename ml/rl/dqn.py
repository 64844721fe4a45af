"""DQN in torch (CleanRL-style, one file): replay buffer, target network, epsilon-greedy schedule.

Training loop, per episode:

1. act epsilon-greedily on the online network (epsilon linear from ``epsilon_start`` to ``epsilon_end`` over the
   first ``exploration_fraction`` of the episodes) and store every transition in a circular replay buffer of
   ``buffer_size`` transitions;
2. when the episode ends and the buffer holds at least ``learning_starts`` transitions, take ``epochs`` gradient
   steps, each on a uniform minibatch of ``batch_size`` transitions: target
   ``y = reward_scale * r + discount_factor * (1 - terminated) * Q_target(s', argmax_a Q_online(s', a))``
   (double DQN; with ``double_q=False`` the max of ``Q_target``), Huber loss against ``Q_online(s, a)``, Adam
   with ``learning_rate`` (annealed linearly to 0 over the run when ``anneal_lr``), gradient norm clipped to
   ``max_grad_norm``;
3. every ``target_update_interval`` gradient steps the target network moves to
   ``tau * online + (1 - tau) * target`` (``tau = 1``: a hard copy).

``dueling`` (default on): the network's last layer has one more output, the state value V(s), and
``Q(s, a) = V(s) + A(s, a) − mean_a A(s, a)``. Here the actions' values differ by a few hundredths of a step
reward while the values themselves are about −3.6 (scaled); the dueling head learns the shared part once, so the
small differences the greedy choice depends on are not lost in it. With it and ``anneal_lr``, DQN matches the
greedy baseline at 400 episodes and beats it at 1,000 (docs/rl.md; measured on held-out days).

Episodes of EdgePlacement end by truncation (a time limit), so the last transition is stored with
``terminated = 0`` and bootstrapped. ``epochs`` (from the API document's parameter set) is the number of gradient
steps per episode. The default, 12 minibatches of 128 after a 48-step episode, draws 32 samples per new
transition (the replay ratio) with a quarter of the torch calls of one update per step: on a small CPU torch's
per-call overhead, not arithmetic, is what costs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, Self

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from ml.base import ProgressCallback
from ml.rl.agent import (
    Agent,
    EpisodeAccumulator,
    EpisodeCallback,
    NumpyMLP,
    Reporter,
    linear_schedule,
    read_torch_artifact,
    torch_training_scope,
)
from ml.rl.env import Scenario
from schemas.rl import DQNParams


class QNetwork(nn.Module):
    """Two ReLU layers; with ``dueling`` the head outputs [V, A_1..A_n] and Q = V + A - mean(A)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int, dueling: bool) -> None:
        super().__init__()
        self.dueling = dueling
        self.net = nn.Sequential(
            nn.Linear(obs_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_actions + int(dueling)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if not self.dueling:
            return out
        value, advantage = out[:, :1], out[:, 1:]
        return value + advantage - advantage.mean(dim=1, keepdim=True)


class ReplayBuffer:
    """Circular buffer of (obs, action, reward, next_obs, terminated) in numpy arrays."""

    def __init__(self, capacity: int, obs_dim: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.size = 0
        self._pos = 0

    def add(
        self, obs: NDArray[np.float32], action: int, reward: float, next_obs: NDArray[np.float32], term: bool
    ) -> None:
        i = self._pos
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(term)
        self._pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(0, self.size, size=batch_size)
        return (
            torch.from_numpy(self.obs[idx]),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.rewards[idx]),
            torch.from_numpy(self.next_obs[idx]),
            torch.from_numpy(self.terminated[idx]),
        )


LEGACY_PARAMS: dict[str, Any] = {"dueling": False, "anneal_lr": False}
"""Artifacts saved before these options existed were trained without them."""


class DQNAgent(Agent):
    """Deep Q-network; ``params`` is a :class:`DQNParams` or a dict of its fields."""

    model_type = "dqn"
    params_model = DQNParams
    params: DQNParams

    def __init__(self, params: DQNParams | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.q_network: QNetwork | None = None

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
        obs_dim = int(env.observation_space.shape[0])
        n_actions = int(env.action_space.n)
        with torch_training_scope(p.seed):
            if self.q_network is None or self._network_shape() != (obs_dim, n_actions):
                self.q_network = QNetwork(obs_dim, n_actions, p.hidden_size, p.dueling)
            q_network = self.q_network
            target_network = QNetwork(obs_dim, n_actions, p.hidden_size, p.dueling)
            target_network.load_state_dict(q_network.state_dict())
            optimizer = torch.optim.Adam(q_network.parameters(), lr=p.learning_rate)
            buffer = ReplayBuffer(p.buffer_size, obs_dim)
            rng = np.random.default_rng(p.seed)
            reporter = Reporter(total_episodes, progress, on_episode)
            decay_episodes = p.exploration_fraction * total_episodes
            gradient_steps = 0
            last_loss: float | None = None

            obs, _ = env.reset(seed=p.seed)
            first_action = int(p.dueling)  # the dueling head's first output is V(s); argmax A = argmax Q
            for episode in range(total_episodes):
                epsilon = linear_schedule(p.epsilon_start, p.epsilon_end, decay_episodes, episode)
                if p.anneal_lr:
                    for group in optimizer.param_groups:
                        group["lr"] = p.learning_rate * (1.0 - episode / total_episodes)
                acc = EpisodeAccumulator()
                policy = NumpyMLP(q_network.net)  # weights only change after the episode
                done = False
                while not done:
                    if rng.random() < epsilon:
                        action = int(rng.integers(n_actions))
                    else:
                        action = int(np.argmax(policy(obs)[first_action:]))
                    next_obs, reward, terminated, truncated, info = env.step(action)
                    buffer.add(obs, action, float(reward) * p.reward_scale, next_obs, bool(terminated))
                    acc.add(float(reward), info)
                    obs = next_obs
                    done = terminated or truncated

                if buffer.size >= max(p.learning_starts, p.batch_size):
                    losses = []
                    for _ in range(p.epochs):
                        b_obs, b_actions, b_rewards, b_next, b_term = buffer.sample(p.batch_size, rng)
                        with torch.no_grad():
                            next_target = target_network(b_next)
                            if p.double_q:
                                next_actions = q_network(b_next).argmax(dim=1, keepdim=True)
                                next_q = next_target.gather(1, next_actions).squeeze(1)
                            else:
                                next_q = next_target.max(dim=1).values
                            target = b_rewards + p.discount_factor * (1.0 - b_term) * next_q
                        q_taken = q_network(b_obs).gather(1, b_actions[:, None]).squeeze(1)
                        loss = nn.functional.smooth_l1_loss(q_taken, target)
                        optimizer.zero_grad()
                        loss.backward()
                        nn.utils.clip_grad_norm_(q_network.parameters(), p.max_grad_norm)
                        optimizer.step()
                        losses.append(float(loss.item()))
                        gradient_steps += 1
                        if gradient_steps % p.target_update_interval == 0:
                            with torch.no_grad():
                                pairs = zip(target_network.parameters(), q_network.parameters(), strict=True)
                                for t_param, q_param in pairs:
                                    t_param.mul_(1.0 - p.tau).add_(q_param, alpha=p.tau)
                    last_loss = float(np.mean(losses))

                self.training_episodes += 1
                reporter.episode_done(acc.stats(episode, loss=last_loss, epsilon=epsilon))  # may raise: propagate
                obs, _ = env.reset()
        return self

    def _network_shape(self) -> tuple[int, int] | None:
        if self.q_network is None:
            return None
        first, last = self.q_network.net[0], self.q_network.net[-1]
        assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
        return first.in_features, last.out_features - int(self.q_network.dueling)

    def q_values(self, observations: ArrayLike) -> NDArray[np.float32]:
        """Q-values (in ``reward_scale`` units) for a batch of observations, shape (n, n_actions)."""
        batch = self._as_batch(observations)
        if self.q_network is None:
            raise RuntimeError("DQNAgent is not fitted")
        with torch.no_grad():
            return self.q_network(torch.from_numpy(batch)).numpy()

    def predict(self, observations: ArrayLike) -> NDArray[np.int64]:
        return np.argmax(self.q_values(observations), axis=1).astype(np.int64)

    def to_bytes(self) -> bytes:
        if self.q_network is None:
            raise RuntimeError("DQNAgent is not fitted")
        buf = io.BytesIO()
        torch.save({"header": self._header(), "state_dict": self.q_network.state_dict()}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        blob = read_torch_artifact(data)
        header = blob["header"]
        cls._check_header(header)
        agent = cls({**LEGACY_PARAMS, **header["params"]})
        agent._restore_header(header)
        shape, n_actions = agent._check_fitted()
        agent.q_network = QNetwork(shape[0], n_actions, agent.params.hidden_size, agent.params.dueling)
        agent.q_network.load_state_dict(blob["state_dict"])
        agent.q_network.eval()
        return agent
