"""PPO in torch for a Discrete action space (CleanRL-style, one file): GAE, clipped objective, minibatches.

Training loop, per rollout of ``rollout_episodes`` whole episodes (the last rollout may be shorter so that
exactly ``total_episodes`` episodes are played):

1. sample actions from the categorical policy ``pi(a | s)`` and record obs, action, log-prob, value V(s), the
   scaled reward ``reward_scale * r`` and the done flags;
2. advantages by GAE(``discount_factor``, ``gae_lambda``): ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - d_t) -
   V(s_t)``, ``A_t = delta_t + gamma * lambda * (1 - d_t) * A_{t+1}``. An episode cut by the time limit
   (truncated, not terminated) bootstraps from V of its final observation; returns = A + V;
3. ``epochs`` passes over the rollout in shuffled minibatches of ``batch_size``: advantages normalised per
   minibatch, loss = ``-min(ratio * A, clip(ratio, 1 - clip_coef, 1 + clip_coef) * A)`` + ``vf_coef`` *
   MSE(V, returns) - ``ent_coef`` * entropy, Adam with ``learning_rate`` (linearly annealed to 0 over the run
   when ``anneal_lr``), gradient norm clipped to ``max_grad_norm``; a pass stops early when the approximate KL
   exceeds ``target_kl`` (if set).

Actor and critic are separate tanh MLPs with orthogonal initialisation (actor head gain 0.01, critic 1.0).
At serving time :meth:`PPOAgent.act` takes the most probable action.
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
from torch.distributions import Categorical

from ml.base import ProgressCallback
from ml.rl.agent import (
    Agent,
    EpisodeAccumulator,
    EpisodeCallback,
    NumpyMLP,
    Reporter,
    read_torch_artifact,
    torch_training_scope,
)
from ml.rl.env import Scenario
from schemas.rl import PPOParams


def _layer(in_features: int, out_features: int, gain: float = float(np.sqrt(2))) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: int) -> None:
        super().__init__()
        self.actor = nn.Sequential(
            _layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(), _layer(hidden, n_actions, 0.01)
        )
        self.critic = nn.Sequential(
            _layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(), _layer(hidden, 1, 1.0)
        )

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def dist(self, x: torch.Tensor) -> Categorical:
        return Categorical(logits=self.actor(x), validate_args=False)


class PPOAgent(Agent):
    """Proximal policy optimisation; ``params`` is a :class:`PPOParams` or a dict of its fields."""

    model_type = "ppo"
    params_model = PPOParams
    params: PPOParams

    def __init__(self, params: PPOParams | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        self.network: ActorCritic | None = None

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
            if self.network is None or self._network_shape() != (obs_dim, n_actions):
                self.network = ActorCritic(obs_dim, n_actions, p.hidden_size)
            network = self.network
            optimizer = torch.optim.Adam(network.parameters(), lr=p.learning_rate, eps=1e-5)
            rng = np.random.default_rng(p.seed)
            reporter = Reporter(total_episodes, progress, on_episode)
            n_updates = -(-total_episodes // p.rollout_episodes)
            loss_value: float | None = None
            entropy_value: float | None = None

            obs, _ = env.reset(seed=p.seed)
            episode = 0
            for update in range(n_updates):
                if p.anneal_lr:
                    optimizer.param_groups[0]["lr"] = p.learning_rate * (1.0 - update / n_updates)

                # 1. rollout of whole episodes, acting with a numpy snapshot of the (unchanging) networks
                actor, critic = NumpyMLP(network.actor), NumpyMLP(network.critic)
                b_obs: list[NDArray[np.float32]] = []
                b_actions: list[int] = []
                b_logprobs: list[float] = []
                b_values: list[float] = []
                b_rewards: list[float] = []
                b_dones: list[float] = []  # 1 after the last step of an episode
                b_next_values: list[float] = []  # V(s') at episode ends (0 if terminated), else unused
                for _ in range(min(p.rollout_episodes, total_episodes - episode)):
                    acc = EpisodeAccumulator()
                    done = False
                    while not done:
                        logits = actor(obs).astype(np.float64)
                        b_values.append(float(critic(obs)[0]))
                        log_probs = logits - logits.max()
                        log_probs -= np.log(np.exp(log_probs).sum())
                        action = int(np.searchsorted(np.cumsum(np.exp(log_probs)), rng.random() * (1.0 - 1e-12)))
                        action = min(action, n_actions - 1)
                        b_logprobs.append(float(log_probs[action]))
                        b_obs.append(obs)
                        b_actions.append(action)
                        obs, reward, terminated, truncated, info = env.step(action)
                        acc.add(float(reward), info)
                        b_rewards.append(float(reward) * p.reward_scale)
                        done = bool(terminated or truncated)
                        b_dones.append(1.0 if done else 0.0)
                        if done and not terminated:
                            b_next_values.append(float(critic(obs)[0]))
                        else:
                            b_next_values.append(0.0)
                    self.training_episodes += 1
                    reporter.episode_done(acc.stats(episode, loss=loss_value, entropy=entropy_value))  # may raise
                    episode += 1
                    obs, _ = env.reset()

                # 2. generalised advantage estimation, backwards over the rollout
                n = len(b_rewards)
                values = np.asarray(b_values, dtype=np.float32)
                advantages = np.zeros(n, dtype=np.float32)
                last_gae = 0.0
                for t in reversed(range(n)):
                    if b_dones[t]:
                        next_value, last_gae = b_next_values[t], 0.0
                    else:
                        next_value = values[t + 1]
                    delta = b_rewards[t] + p.discount_factor * next_value - values[t]
                    last_gae = delta + p.discount_factor * p.gae_lambda * last_gae
                    advantages[t] = last_gae
                returns = advantages + values

                # 3. clipped-objective updates in minibatches
                t_obs = torch.from_numpy(np.stack(b_obs))
                t_actions = torch.as_tensor(b_actions, dtype=torch.int64)
                t_logprobs = torch.as_tensor(b_logprobs, dtype=torch.float32)
                t_adv = torch.from_numpy(advantages)
                t_returns = torch.from_numpy(returns)
                losses, entropies = [], []
                for _ in range(p.epochs):
                    order = rng.permutation(n)
                    approx_kl = 0.0
                    for start in range(0, n, p.batch_size):
                        mb = torch.from_numpy(order[start : start + p.batch_size])
                        dist = network.dist(t_obs[mb])
                        new_logprob = dist.log_prob(t_actions[mb])
                        entropy = dist.entropy().mean()
                        log_ratio = new_logprob - t_logprobs[mb]
                        ratio = log_ratio.exp()
                        with torch.no_grad():
                            approx_kl = float(((ratio - 1.0) - log_ratio).mean())
                        adv = t_adv[mb]
                        if p.normalize_advantages and len(mb) > 1:
                            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                        pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - p.clip_coef, 1.0 + p.clip_coef))
                        v_loss = 0.5 * (network.value(t_obs[mb]) - t_returns[mb]).pow(2).mean()
                        loss = pg_loss.mean() + p.vf_coef * v_loss - p.ent_coef * entropy
                        optimizer.zero_grad()
                        loss.backward()
                        nn.utils.clip_grad_norm_(network.parameters(), p.max_grad_norm)
                        optimizer.step()
                        losses.append(float(loss.item()))
                        entropies.append(float(entropy.item()))
                    if p.target_kl is not None and approx_kl > p.target_kl:
                        break
                loss_value = float(np.mean(losses))
                entropy_value = float(np.mean(entropies))
        return self

    def _network_shape(self) -> tuple[int, int] | None:
        if self.network is None:
            return None
        first, last = self.network.actor[0], self.network.actor[-1]
        assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
        return first.in_features, last.out_features

    def predict(self, observations: ArrayLike) -> NDArray[np.int64]:
        batch = self._as_batch(observations)
        if self.network is None:
            raise RuntimeError("PPOAgent is not fitted")
        with torch.no_grad():
            return self.network.actor(torch.from_numpy(batch)).argmax(dim=-1).numpy().astype(np.int64)

    def to_bytes(self) -> bytes:
        if self.network is None:
            raise RuntimeError("PPOAgent is not fitted")
        buf = io.BytesIO()
        torch.save({"header": self._header(), "state_dict": self.network.state_dict()}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        blob = read_torch_artifact(data)
        header = blob["header"]
        cls._check_header(header)
        agent = cls(header["params"])
        agent._restore_header(header)
        shape, n_actions = agent._check_fitted()
        agent.network = ActorCritic(shape[0], n_actions, agent.params.hidden_size)
        agent.network.load_state_dict(blob["state_dict"])
        agent.network.eval()
        return agent
