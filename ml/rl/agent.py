"""The contract shared by the RL agents (Q-learning, DQN, PPO), following ``ml/base.py``.

* ``Agent(params)`` validates its pydantic params (``extra="forbid"``) before any work;
* ``fit(env_or_scenario, total_episodes, *, progress=None, on_episode=None) -> self`` trains. ``on_episode`` gets
  an :class:`EpisodeStats` after every episode; ``progress`` gets (percent, figures) through a
  :class:`~ml.base.Throttle`. Either may raise :class:`~ml.base.TrainingCancelled`: the agent stops right there
  (so within the episode that just ended) and the exception propagates to the caller;
* ``act(observation) -> int`` is the greedy action used at serving time, ``predict(observations)`` the batched
  form;
* ``to_bytes()`` / ``from_bytes()`` give the artifact. Torch agents store ``torch.save`` of a dict of plain
  values and tensors (loaded back with ``weights_only=True``, so loading runs no pickled code); Q-learning stores
  a numpy ``.npz``.
"""

from __future__ import annotations

import io
import json
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Self

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.base import ProgressCallback, Throttle
from ml.rl.env import EdgePlacementEnv, Scenario
from schemas.rl import AgentParams

ARTIFACT_FORMAT = "modelbus.rl.agent/1"
# AgentParams and the per-agent params models live in schemas.rl, so the API validates parameters without ml.


@dataclass(frozen=True, slots=True)
class EpisodeStats:
    """Figures of one finished training episode (the payload of an ``rl.episodes`` event)."""

    episode: int
    """0-based index of the episode within this ``fit``."""
    reward: float
    steps: int
    latency_ms: float
    """Mean over the episode's steps of the load-weighted mean user latency."""
    cost: float
    overload: float
    loss: float | None = None
    """Mean training loss of the last update (None before the first update, always None for Q-learning's
    episodes without updates)."""
    epsilon: float | None = None
    """Exploration rate used in the episode (Q-learning, DQN)."""
    entropy: float | None = None
    """Policy entropy of the last update (PPO)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


EpisodeCallback = Callable[[EpisodeStats], None]


class EpisodeAccumulator:
    """Sums one episode's reward and info figures."""

    def __init__(self) -> None:
        self.reward = 0.0
        self.steps = 0
        self._latency = 0.0
        self._cost = 0.0
        self._overload = 0.0

    def add(self, reward: float, info: Mapping[str, Any]) -> None:
        self.reward += float(reward)
        self.steps += 1
        self._latency += float(info.get("latency_ms", 0.0))
        self._cost += float(info.get("cost", 0.0))
        self._overload += float(info.get("overload", 0.0))

    def stats(
        self, episode: int, *, loss: float | None = None, epsilon: float | None = None, entropy: float | None = None
    ) -> EpisodeStats:
        n = max(self.steps, 1)
        return EpisodeStats(
            episode=episode,
            reward=self.reward,
            steps=self.steps,
            latency_ms=self._latency / n,
            cost=self._cost / n,
            overload=self._overload / n,
            loss=loss,
            epsilon=epsilon,
            entropy=entropy,
        )


class Reporter:
    """Sends each episode to ``on_episode`` (every time) and to ``progress`` (throttled)."""

    def __init__(
        self, total_episodes: int, progress: ProgressCallback | None, on_episode: EpisodeCallback | None
    ) -> None:
        self.total_episodes = total_episodes
        self._progress = Throttle(progress)
        self._on_episode = on_episode

    def episode_done(self, stats: EpisodeStats) -> None:
        if self._on_episode is not None:
            self._on_episode(stats)
        pct = 100.0 * (stats.episode + 1) / self.total_episodes
        self._progress(
            pct,
            {
                "episode": stats.episode,
                "total_episodes": self.total_episodes,
                "reward": stats.reward,
                "steps": stats.steps,
                "latency_ms": stats.latency_ms,
            },
        )


class Agent(ABC):
    """Base class of the RL agents. Subclasses set ``model_type`` and ``params_model``."""

    model_type: ClassVar[str]
    params_model: ClassVar[type[AgentParams]]

    def __init__(self, params: AgentParams | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        if isinstance(params, AgentParams):
            data: dict[str, Any] = params.model_dump()
        else:
            data = dict(params or {})
        data.update(overrides)
        self.params = self.params_model.model_validate(data)
        self.observation_shape: tuple[int, ...] | None = None
        self.n_actions: int | None = None
        self.training_episodes = 0

    # -- training -------------------------------------------------------------------------------------------

    @abstractmethod
    def fit(
        self,
        env_or_scenario: gym.Env[Any, Any] | Scenario | None,
        total_episodes: int,
        *,
        progress: ProgressCallback | None = None,
        on_episode: EpisodeCallback | None = None,
    ) -> Self: ...

    def _prepare(self, env_or_scenario: gym.Env[Any, Any] | Scenario | None, total_episodes: int) -> gym.Env[Any, Any]:
        """Validate ``total_episodes``, build or check the environment and record its spaces."""
        if not isinstance(total_episodes, int) or isinstance(total_episodes, bool) or total_episodes < 1:
            raise ValueError(f"total_episodes must be a positive int, got {total_episodes!r}")
        env: gym.Env[Any, Any]
        if env_or_scenario is None or isinstance(env_or_scenario, Scenario):
            env = EdgePlacementEnv(scenario=env_or_scenario)
        elif isinstance(env_or_scenario, gym.Env):
            env = env_or_scenario
        else:
            raise TypeError(f"expected a gymnasium Env or a Scenario, got {type(env_or_scenario).__name__}")
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"{self.model_type} needs a Discrete action space, got {env.action_space}")
        if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
            raise TypeError(f"{self.model_type} needs a 1-D Box observation space, got {env.observation_space}")
        self.observation_shape = tuple(int(x) for x in env.observation_space.shape)
        self.n_actions = int(env.action_space.n)
        return env

    # -- serving --------------------------------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return self.observation_shape is not None

    def _check_fitted(self) -> tuple[tuple[int, ...], int]:
        if self.observation_shape is None or self.n_actions is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return self.observation_shape, self.n_actions

    def _as_batch(self, observations: ArrayLike) -> NDArray[np.float32]:
        shape, _ = self._check_fitted()
        batch = np.asarray(observations, dtype=np.float32)
        if batch.ndim == 1:
            batch = batch[None, :]
        if batch.ndim != 2 or batch.shape[1:] != shape:
            raise ValueError(f"observations must have shape (n, {shape[0]}) or ({shape[0]},), got {batch.shape}")
        return batch

    def act(self, observation: ArrayLike) -> int:
        """Greedy action for one observation."""
        return int(self.predict(observation)[0])

    @abstractmethod
    def predict(self, observations: ArrayLike) -> NDArray[np.int64]:
        """Greedy actions for a batch (n, obs_dim) or one observation (obs_dim,) -> shape (n,)."""

    # -- serialisation --------------------------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        shape, n_actions = self._check_fitted()
        return {
            "format": ARTIFACT_FORMAT,
            "model_type": self.model_type,
            "params": self.params.model_dump(mode="json"),
            "observation_shape": list(shape),
            "n_actions": n_actions,
            "training_episodes": self.training_episodes,
        }

    def _restore_header(self, header: Mapping[str, Any]) -> None:
        self.observation_shape = tuple(int(x) for x in header["observation_shape"])
        self.n_actions = int(header["n_actions"])
        self.training_episodes = int(header.get("training_episodes", 0))

    @classmethod
    def _check_header(cls, header: Mapping[str, Any]) -> None:
        if header.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"not a {ARTIFACT_FORMAT} artifact")
        if header.get("model_type") != cls.model_type:
            raise ValueError(f"artifact holds a {header.get('model_type')!r} agent, not {cls.model_type!r}")

    @abstractmethod
    def to_bytes(self) -> bytes: ...

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes) -> Self: ...


def read_npz_artifact(data: bytes) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """(header, arrays) of a numpy artifact (Q-learning); ValueError if ``data`` is not one."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: np.array(npz[name]) for name in npz.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
    except Exception as exc:  # a torch artifact, a truncated file, random bytes...
        raise ValueError(f"not a numpy agent artifact: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"not a {ARTIFACT_FORMAT} artifact")
    return header, arrays


def read_torch_artifact(data: bytes) -> dict[str, Any]:
    """The dict a torch agent saved (loaded with ``weights_only=True``); ValueError if ``data`` is not one."""
    import torch  # deferred: Q-learning artifacts need no torch

    try:
        blob = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:
        raise ValueError(f"not a torch agent artifact: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("header", {}).get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"not a {ARTIFACT_FORMAT} artifact")
    return blob


def artifact_model_type(data: bytes) -> str:
    """The ``model_type`` stored in an agent artifact (npz for Q-learning, torch zip for the others)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            is_npz = "header.npy" in zf.namelist()
    except zipfile.BadZipFile as exc:
        raise ValueError("not an agent artifact") from exc
    header = read_npz_artifact(data)[0] if is_npz else read_torch_artifact(data)["header"]
    return str(header["model_type"])


@contextmanager
def torch_training_scope(seed: int) -> Any:
    """One intra-op thread (2-core machine shared with other work) and a private, seeded torch RNG.

    The global thread count and RNG state are restored on exit, so fitting an agent does not change the
    caller's torch state.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` (then ``end``)."""
    if duration <= 0:
        return end
    return start + (end - start) * min(t / duration, 1.0)


class NumpyMLP:
    """A frozen numpy copy of an ``nn.Sequential`` of Linear / ReLU / Tanh layers.

    Used to act inside a rollout, where the weights do not change: one observation through a tiny network costs
    a few microseconds in numpy against about 50 in torch, which is most of the training time on a small CPU.
    """

    def __init__(self, sequential: Any) -> None:
        from torch import nn

        self.layers: list[tuple[str, NDArray[np.float32] | None, NDArray[np.float32] | None]] = []
        for module in sequential:
            if isinstance(module, nn.Linear):
                weight = module.weight.detach().numpy().astype(np.float32).T.copy()
                bias = module.bias.detach().numpy().astype(np.float32).copy()
                self.layers.append(("linear", weight, bias))
            elif isinstance(module, nn.ReLU):
                self.layers.append(("relu", None, None))
            elif isinstance(module, nn.Tanh):
                self.layers.append(("tanh", None, None))
            else:
                raise TypeError(f"NumpyMLP does not support {type(module).__name__}")

    def __call__(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        for kind, weight, bias in self.layers:
            if kind == "linear":
                assert weight is not None and bias is not None
                x = x @ weight + bias
            elif kind == "relu":
                x = np.maximum(x, 0.0)
            else:
                x = np.tanh(x)
        return x
