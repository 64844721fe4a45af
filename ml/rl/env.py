"""EdgePlacement-v0: place replicas of one service on edge nodes as user load moves through the day.

The world
---------
* ``N`` edge nodes, each with CPU, RAM and network bandwidth capacity and a cost per replica per step.
  A replica reserves ``service.cpu_per_replica`` CPU and ``service.ram_per_replica_gb`` RAM, so a node
  holds at most ``max_replicas[n] = min(cpu // cpu_per_replica, ram // ram_per_replica, node.max_replicas)``.
  Its serving capacity (load units) with ``r`` replicas is
  ``min(r * service.load_per_replica, bandwidth_mbps / service.bandwidth_per_load_mbps)``.
* ``G`` user groups (base stations) with a network latency to every node and a load that follows a daily
  curve: ``load_g(h) = base_g * (1 + amplitude_g * cos(2 pi (h - peak_hour_g) / 24)) * (1 + noise_std * eps)``,
  ``eps ~ N(0, 1)`` drawn from the episode's seeded generator, clipped at 0.
* Routing: load is sent to the lowest-latency node with free capacity. All (group, node) pairs are visited in
  order of increasing latency and each pair takes as much of the group's remaining load as the node can still
  serve. Load that finds no edge capacity goes to the cloud (``cloud_latency_ms``) and counts as *overload*.
* Latency of load from group g served at node n: ``latency_ms[g][n] + processing_ms * (1 + util_n)`` where
  ``util_n`` is the node's served load over its serving capacity (a linear congestion term).

Action (``Discrete(1 + 2N)``)
----------------------------
``0`` = no-op, ``1..N`` = add one replica on node ``a - 1``, ``N+1..2N`` = remove one replica from node
``a - N - 1``. Adding to a full node or removing from an empty one changes nothing and costs
``weights.invalid_action``. Nine actions for the default four nodes: small enough for tabular Q-learning and
DQN, and any placement is reachable in a few steps (one replica move per 30 simulated minutes).

Observation (``Box(0, 1, (2N + G + 4,), float32)``)
--------------------------------------------------
``[util_0..util_{N-1}, replicas_n / max_replicas_n .., load_g / load_scale .., overload, day_fraction,
(sin(2 pi day_fraction) + 1) / 2, (cos(2 pi day_fraction) + 1) / 2]``; ``load_scale`` is the largest noise-free
group peak times 1.25. Every entry is clipped to [0, 1]. :class:`ObservationLayout` gives the slices.

Reward (per step, after the action, on the next time slot's load)
-----------------------------------------------------------------
``r = -(w_latency * latency_ms + w_cost * cost + w_overload * overload + w_invalid * invalid)`` with

* ``latency_ms`` = load-weighted mean user latency (edge and cloud),
* ``cost`` = ``sum_n replicas_n * cost_per_replica_n``,
* ``overload`` = fraction of the load that found no edge capacity (in [0, 1]),
* ``invalid`` = 1 if the action could not be applied, else 0,

and the weights from :class:`RewardWeights` (default ``w_latency = 0.05`` per ms, ``w_cost = 0.4`` per cost
unit, ``w_overload = 5.0``, ``w_invalid = 0.1``). ``info`` carries ``latency_ms``, ``cost``, ``overload``,
``invalid``, ``replicas`` and ``slot``.

Episodes are ``scenario.episode_steps`` steps (default 48 steps of 30 minutes = one day). The last step returns
``truncated=True`` (a time limit: the world goes on), never ``terminated``. The whole load trajectory of an
episode is drawn at ``reset`` from the seeded generator, so it does not depend on the actions: same seed and
same actions give the same trajectory, and baselines can replay the same days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_ID = "modelbus/EdgePlacement-v0"

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSpec(_Model):
    """One edge node."""

    name: str
    cpu: float = Field(gt=0, description="CPU cores")
    ram_gb: float = Field(gt=0, description="RAM in GB")
    bandwidth_mbps: float = Field(gt=0, description="uplink bandwidth in Mbit/s")
    cost_per_replica: float = Field(ge=0, description="cost of one replica for one step")
    max_replicas: int | None = Field(default=None, ge=0, le=16, description="extra cap on top of CPU/RAM")


class UserGroupSpec(_Model):
    """One user group (a base station) with its daily load curve and its latency to every node."""

    name: str
    base_load: float = Field(ge=0, description="mean load in load units")
    amplitude: float = Field(default=0.5, ge=0, le=1, description="relative daily swing")
    peak_hour: float = Field(default=12.0, ge=0, lt=24, description="hour of the daily peak")
    latency_ms: tuple[float, ...] = Field(min_length=1, description="network latency to each node, in ms")


class ServiceSpec(_Model):
    """What one replica of the service needs and serves."""

    cpu_per_replica: float = Field(default=2.0, gt=0)
    ram_per_replica_gb: float = Field(default=4.0, gt=0)
    load_per_replica: float = Field(default=1.0, gt=0, description="load units one replica serves")
    bandwidth_per_load_mbps: float = Field(default=200.0, gt=0, description="bandwidth one load unit needs")
    processing_ms: float = Field(default=10.0, ge=0, description="service time at zero utilisation")


class RewardWeights(_Model):
    """Weights of ``r = -(latency * latency_ms + cost * cost + overload * overload + invalid_action * invalid)``."""

    latency: float = Field(default=0.05, ge=0, description="per ms of load-weighted mean latency")
    cost: float = Field(default=0.4, ge=0, description="per unit of replica cost")
    overload: float = Field(default=5.0, ge=0, description="per fraction of load with no edge capacity")
    invalid_action: float = Field(default=0.1, ge=0, description="per action that could not be applied")


class Scenario(_Model):
    """A complete, JSON-serialisable description of one placement problem."""

    name: str = "custom"
    nodes: tuple[NodeSpec, ...] = Field(min_length=1, max_length=16)
    groups: tuple[UserGroupSpec, ...] = Field(min_length=1, max_length=64)
    service: ServiceSpec = ServiceSpec()
    weights: RewardWeights = RewardWeights()
    episode_steps: int = Field(default=48, ge=1, le=10_000)
    step_minutes: float = Field(default=30.0, gt=0, le=1440)
    start_hour: float = Field(default=0.0, ge=0, lt=24)
    load_noise_std: float = Field(default=0.05, ge=0, le=1)
    cloud_latency_ms: float = Field(default=150.0, ge=0)
    initial_replicas: tuple[int, ...] | None = Field(default=None, description="None: drawn uniformly at reset")

    @model_validator(mode="after")
    def _check_shapes(self) -> Self:
        n = len(self.nodes)
        for g in self.groups:
            if len(g.latency_ms) != n:
                raise ValueError(f"group {g.name!r} has {len(g.latency_ms)} latencies for {n} nodes")
        caps = self.max_replicas()
        if sum(caps) == 0:
            raise ValueError("no node can hold a single replica of the service")
        if self.initial_replicas is not None:
            if len(self.initial_replicas) != n:
                raise ValueError(f"initial_replicas has {len(self.initial_replicas)} entries for {n} nodes")
            for i, (r, cap) in enumerate(zip(self.initial_replicas, caps, strict=True)):
                if not 0 <= r <= cap:
                    raise ValueError(f"initial_replicas[{i}]={r} is outside 0..{cap}")
        return self

    def max_replicas(self) -> list[int]:
        """Replicas each node can hold given CPU, RAM and its own cap."""
        s = self.service
        caps = []
        for node in self.nodes:
            cap = min(int(node.cpu // s.cpu_per_replica), int(node.ram_gb // s.ram_per_replica_gb))
            if node.max_replicas is not None:
                cap = min(cap, node.max_replicas)
            caps.append(cap)
        return caps


def default_scenario() -> Scenario:
    """Four edge nodes around a city and six user groups whose peaks are spread over the day.

    A replica needs 2 CPU and 4 GB and serves 1 load unit; a load unit needs 200 Mbit/s. Capacities: metro-core
    4 replicas (bandwidth would allow 5 units), north 2 replicas but bandwidth allows only 1.5 units, south 2,
    east 3: 10.5 load units at most, against a summed noise-free load between 4.1 (at 03:00) and 9.1 (at 15:00).
    Daytime load sits downtown and in industry, evening load in the homes, so the best placement moves.
    """
    return Scenario(
        name="default-city",
        nodes=(
            NodeSpec(name="metro-core", cpu=8, ram_gb=16, bandwidth_mbps=1000, cost_per_replica=1.0),
            NodeSpec(name="north", cpu=4, ram_gb=8, bandwidth_mbps=300, cost_per_replica=0.5),
            NodeSpec(name="south", cpu=4, ram_gb=8, bandwidth_mbps=400, cost_per_replica=0.5),
            NodeSpec(name="east", cpu=6, ram_gb=12, bandwidth_mbps=600, cost_per_replica=0.7),
        ),
        groups=(
            UserGroupSpec(name="downtown", base_load=2.0, amplitude=0.8, peak_hour=13, latency_ms=(5, 25, 25, 30)),
            UserGroupSpec(name="north-homes", base_load=1.0, amplitude=0.8, peak_hour=20, latency_ms=(20, 6, 45, 35)),
            UserGroupSpec(name="south-homes", base_load=1.0, amplitude=0.8, peak_hour=21, latency_ms=(20, 45, 6, 35)),
            UserGroupSpec(name="industry", base_load=1.2, amplitude=0.8, peak_hour=9, latency_ms=(25, 40, 40, 5)),
            UserGroupSpec(name="campus", base_load=0.8, amplitude=0.9, peak_hour=15, latency_ms=(12, 15, 30, 25)),
            UserGroupSpec(name="suburbs", base_load=0.6, amplitude=0.6, peak_hour=19, latency_ms=(35, 20, 20, 40)),
        ),
    )


@dataclass(frozen=True, slots=True)
class ObservationLayout:
    """Where each feature lives in the observation vector."""

    n_nodes: int
    n_groups: int
    max_replicas: tuple[int, ...]

    @property
    def utilisation(self) -> slice:
        return slice(0, self.n_nodes)

    @property
    def replicas(self) -> slice:
        return slice(self.n_nodes, 2 * self.n_nodes)

    @property
    def loads(self) -> slice:
        return slice(2 * self.n_nodes, 2 * self.n_nodes + self.n_groups)

    @property
    def overload(self) -> int:
        return 2 * self.n_nodes + self.n_groups

    @property
    def day_fraction(self) -> int:
        return 2 * self.n_nodes + self.n_groups + 1

    @property
    def size(self) -> int:
        return 2 * self.n_nodes + self.n_groups + 4


@dataclass(frozen=True, slots=True)
class ServeResult:
    """What serving a load with a placement gives.

    From :meth:`PlacementModel.serve`: arrays over the broadcast batch dimensions (utilisation (..., N)).
    From :meth:`PlacementModel.serve_one`: Python floats and a list of N utilisations.
    """

    latency_ms: Any
    cost: Any
    overload: Any
    utilisation: Any

    def reward(self, weights: RewardWeights, invalid: Any = 0.0) -> Any:
        """``-(w_latency * latency_ms + w_cost * cost + w_overload * overload + w_invalid * invalid)``."""
        return -(
            weights.latency * self.latency_ms
            + weights.cost * self.cost
            + weights.overload * self.overload
            + weights.invalid_action * invalid
        )


class PlacementModel:
    """The scenario as arrays, with a vectorised ``serve`` (routing, latency, cost, overload)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        s = scenario.service
        self.n_nodes = len(scenario.nodes)
        self.n_groups = len(scenario.groups)
        self.max_replicas = np.array(scenario.max_replicas(), dtype=np.int64)
        self.cost_per_replica = np.array([n.cost_per_replica for n in scenario.nodes], dtype=np.float64)
        self.bandwidth_cap = np.array([n.bandwidth_mbps / s.bandwidth_per_load_mbps for n in scenario.nodes])
        self.latency = np.array([g.latency_ms for g in scenario.groups], dtype=np.float64)  # (G, N)
        self.base = np.array([g.base_load for g in scenario.groups], dtype=np.float64)
        self.amplitude = np.array([g.amplitude for g in scenario.groups], dtype=np.float64)
        self.peak_hour = np.array([g.peak_hour for g in scenario.groups], dtype=np.float64)
        self.load_scale = float(max(np.max(self.base * (1.0 + self.amplitude)), 1e-9) * 1.25)
        # Routing order: every (group, node) pair by increasing latency (stable, so ties go to lower indices).
        order = np.argsort(self.latency, axis=None, kind="stable")
        self.pairs: list[tuple[int, int]] = [(int(i // self.n_nodes), int(i % self.n_nodes)) for i in order]
        # Plain-Python copies for the per-step scalar path (numpy call overhead dominates at this size).
        self._pairs_py = [(g, n, float(self.latency[g, n])) for g, n in self.pairs]
        self._bandwidth_cap_py = [float(x) for x in self.bandwidth_cap]
        self._cost_py = [float(x) for x in self.cost_per_replica]

    def capacity(self, replicas: IntArray | FloatArray) -> FloatArray:
        """Serving capacity in load units per node, shape like ``replicas``."""
        s = self.scenario.service
        return np.minimum(np.asarray(replicas, dtype=np.float64) * s.load_per_replica, self.bandwidth_cap)

    def hour(self, slot: int | IntArray) -> FloatArray:
        sc = self.scenario
        return (sc.start_hour + np.asarray(slot, dtype=np.float64) * sc.step_minutes / 60.0) % 24.0

    def expected_loads(self, slot: int | IntArray) -> FloatArray:
        """Noise-free load of every group at time slot(s) ``slot``: shape (..., G)."""
        h = self.hour(slot)[..., None]
        return self.base * (1.0 + self.amplitude * np.cos(2.0 * math.pi * (h - self.peak_hour) / 24.0))

    def serve(self, replicas: IntArray, loads: FloatArray) -> ServeResult:
        """Route ``loads`` (..., G) onto ``replicas`` (..., N); leading dimensions broadcast."""
        replicas = np.asarray(replicas)
        loads = np.asarray(loads, dtype=np.float64)
        shape = np.broadcast_shapes(replicas.shape[:-1], loads.shape[:-1])
        free = np.array(np.broadcast_to(self.capacity(replicas), (*shape, self.n_nodes)))
        capacity = free.copy()
        remaining = np.array(np.broadcast_to(loads, (*shape, self.n_groups)))
        network_ms = np.zeros(shape)
        for g, n in self.pairs:
            amount = np.minimum(remaining[..., g], free[..., n])
            remaining[..., g] -= amount
            free[..., n] -= amount
            network_ms += amount * self.latency[g, n]
        served = capacity - free
        util = np.divide(served, capacity, out=np.zeros_like(served), where=capacity > 0)
        processing_ms = np.sum(served * self.scenario.service.processing_ms * (1.0 + util), axis=-1)
        unserved = np.sum(remaining, axis=-1)
        total = np.sum(loads, axis=-1) * np.ones(shape)
        weighted_ms = network_ms + processing_ms + unserved * self.scenario.cloud_latency_ms
        safe_total = np.where(total > 0, total, 1.0)
        latency = np.where(total > 0, weighted_ms / safe_total, 0.0)
        overload = np.where(total > 0, unserved / safe_total, 0.0)
        cost = np.sum(np.asarray(replicas, dtype=np.float64) * self.cost_per_replica, axis=-1) * np.ones(shape)
        return ServeResult(latency_ms=latency, cost=cost, overload=overload, utilisation=util)

    def serve_one(self, replicas: IntArray, loads: FloatArray) -> ServeResult:
        """Same as :meth:`serve` for one placement and one load vector, in plain Python (about 20x faster)."""
        s = self.scenario.service
        per_replica = s.load_per_replica
        pairs = zip(replicas.tolist(), self._bandwidth_cap_py, strict=True)
        capacity = [min(float(r) * per_replica, bw) for r, bw in pairs]
        free = capacity.copy()
        remaining = loads.tolist()
        network_ms = 0.0
        for g, n, lat in self._pairs_py:
            rg = remaining[g]
            fn = free[n]
            if rg <= 0.0 or fn <= 0.0:
                continue
            amount = rg if rg < fn else fn
            remaining[g] = rg - amount
            free[n] = fn - amount
            network_ms += amount * lat
        util = [(c - f) / c if c > 0 else 0.0 for c, f in zip(capacity, free, strict=True)]
        processing_ms = sum((c - f) * s.processing_ms * (1.0 + u) for c, f, u in zip(capacity, free, util, strict=True))
        unserved = sum(remaining)
        total = sum(loads.tolist())
        if total > 0:
            latency = (network_ms + processing_ms + unserved * self.scenario.cloud_latency_ms) / total
            overload = unserved / total
        else:
            latency = overload = 0.0
        cost = sum(float(r) * c for r, c in zip(replicas.tolist(), self._cost_py, strict=True))
        return ServeResult(latency_ms=latency, cost=cost, overload=overload, utilisation=util)

    def apply_action(self, replicas: IntArray, action: int) -> tuple[IntArray, bool]:
        """The placement after ``action`` and whether the action was valid (invalid actions change nothing)."""
        n = self.n_nodes
        new = replicas.copy()
        if action == 0:
            return new, True
        node = (action - 1) % n
        if action <= n:
            if new[node] >= self.max_replicas[node]:
                return new, False
            new[node] += 1
        else:
            if new[node] <= 0:
                return new, False
            new[node] -= 1
        return new, True

    def all_placements(self) -> IntArray:
        """Every placement within the per-node caps, shape (P, N)."""
        grids = np.meshgrid(*[np.arange(c + 1) for c in self.max_replicas], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=-1).astype(np.int64)


class EdgePlacementEnv(gym.Env[NDArray[np.float32], np.int64]):
    """Gymnasium environment for replica placement on edge nodes (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        scenario: Scenario | dict[str, Any] | None = None,
        seed: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        if scenario is None:
            scenario = default_scenario()
        elif isinstance(scenario, dict):
            scenario = Scenario.model_validate(scenario)
        self.scenario: Scenario = scenario
        self.model = PlacementModel(scenario)
        self.layout = ObservationLayout(
            n_nodes=self.model.n_nodes,
            n_groups=self.model.n_groups,
            max_replicas=tuple(int(c) for c in self.model.max_replicas),
        )
        self.render_mode = render_mode
        self._n_actions = 1 + 2 * self.model.n_nodes
        self.action_space = spaces.Discrete(self._n_actions)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(self.layout.size,), dtype=np.float32)
        self._first_seed = seed
        self._seed_used = False
        self.slot = 0
        self.replicas = np.zeros(self.model.n_nodes, dtype=np.int64)
        self.loads = np.zeros((scenario.episode_steps + 1, self.model.n_groups))
        self._last = self.model.serve(self.replicas, self.loads[0])

    # -- gymnasium API -------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Start a day: draw its whole load trajectory, then the initial placement.

        ``options={"initial_replicas": [...]}`` fixes the initial placement for this episode; otherwise the
        scenario's ``initial_replicas`` or, if that is None, a uniformly random placement within the caps.
        """
        if not self._seed_used:
            self._seed_used = True
            if seed is None:
                seed = self._first_seed
        super().reset(seed=seed)
        sc = self.scenario
        slots = np.arange(sc.episode_steps + 1)
        noise = self.np_random.standard_normal((sc.episode_steps + 1, self.model.n_groups))
        self.loads = np.clip(self.model.expected_loads(slots) * (1.0 + sc.load_noise_std * noise), 0.0, None)
        if options and "initial_replicas" in options:
            initial = np.asarray(options["initial_replicas"], dtype=np.int64)
            caps = self.model.max_replicas
            if initial.shape != caps.shape or np.any(initial < 0) or np.any(initial > caps):
                raise ValueError(f"initial_replicas must be {len(caps)} ints within 0..{self.layout.max_replicas}")
            self.replicas = initial.copy()
        elif sc.initial_replicas is not None:
            self.replicas = np.array(sc.initial_replicas, dtype=np.int64)
        else:
            self.replicas = self.np_random.integers(0, self.model.max_replicas + 1).astype(np.int64)
        self.slot = 0
        self._last = self.model.serve_one(self.replicas, self.loads[0])
        return self._observation(), self._info(invalid=False)

    def step(self, action: int | np.integer[Any]) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        a = int(action)
        if a != action or not 0 <= a < self._n_actions:
            raise ValueError(f"invalid action {action!r} for {self.action_space}")
        self.replicas, valid = self.model.apply_action(self.replicas, a)
        self.slot += 1
        self._last = self.model.serve_one(self.replicas, self.loads[self.slot])
        reward = self._last.reward(self.scenario.weights, 0.0 if valid else 1.0)
        truncated = self.slot >= self.scenario.episode_steps
        return self._observation(), reward, False, truncated, self._info(invalid=not valid)

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        hour = float(self.model.hour(self.slot))
        nodes = ", ".join(
            f"{node.name}={int(r)}/{int(c)} ({u:.0%})"
            for node, r, c, u in zip(
                self.scenario.nodes, self.replicas, self.model.max_replicas, self._last.utilisation, strict=True
            )
        )
        return (
            f"slot {self.slot} {int(hour):02d}:{int(round((hour % 1) * 60)):02d} | {nodes} | "
            f"latency {float(self._last.latency_ms):.1f} ms, cost {float(self._last.cost):.2f}, "
            f"overload {float(self._last.overload):.1%}\n"
        )

    def _observation(self) -> NDArray[np.float32]:
        scale = self.model.load_scale
        sc = self.scenario
        frac = ((sc.start_hour + self.slot * sc.step_minutes / 60.0) % 24.0) / 24.0
        values = [
            *self._last.utilisation,
            *(r / c if c > 0 else 0.0 for r, c in zip(self.replicas.tolist(), self.layout.max_replicas, strict=True)),
            *(x / scale for x in self.loads[self.slot].tolist()),
            self._last.overload,
            frac,
            (math.sin(2.0 * math.pi * frac) + 1.0) / 2.0,
            (math.cos(2.0 * math.pi * frac) + 1.0) / 2.0,
        ]
        return np.array([0.0 if v < 0.0 else (1.0 if v > 1.0 else v) for v in values], dtype=np.float32)

    def _info(self, *, invalid: bool) -> dict[str, Any]:
        return {
            "latency_ms": float(self._last.latency_ms),
            "cost": float(self._last.cost),
            "overload": float(self._last.overload),
            "invalid": invalid,
            "replicas": self.replicas.tolist(),
            "slot": self.slot,
        }


def make_env(scenario: Scenario | None = None, seed: int | None = None) -> EdgePlacementEnv:
    """A bare :class:`EdgePlacementEnv` (no wrappers): the fast path for training and baselines."""
    return EdgePlacementEnv(scenario=scenario, seed=seed)
