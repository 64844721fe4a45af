"""RL edge placement (``/api/v1``, seed 004): agent hyperparameters, API bodies and the RL events.

The hyperparameter models live here (not in ``ml/rl``) so the API can answer 422 for a bad ``parameters``
object at submission without importing ``ml``; ``ml.rl`` imports them from here.

Events:

* ``rl.episodes``: :class:`EpisodeRecorded`, one per finished training episode (key ``job_id``);
* ``model.events``: :class:`ModelStatusChanged`, every registry status change (compare-and-set on
  ``status_version``; the event's ``sequence`` is the new ``status_version``);
* ``deploy.commands``: :class:`DeployRequested` / :class:`UndeployRequested`;
* ``deploy.events``: :class:`DeploymentChanged` (deployed, failed, undeployed);
* ``predict.served``: :class:`ActServed`, one per ``rl.act`` request served.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.common import UtcDatetime
from schemas.envelope import Envelope, Payload

RLModelType = Literal["q_learning", "dqn", "ppo"]
RL_MODEL_TYPES: tuple[str, ...] = ("q_learning", "dqn", "ppo")
MAX_EPISODES = 100_000

HELD_OUT_FIRST_SEED = 2_000_000_000
"""First held-out day: every reported RL figure is measured on days ``reset(seed=s)`` for s in
``HELD_OUT_FIRST_SEED .. HELD_OUT_FIRST_SEED + HELD_OUT_DAYS - 1`` (``ml.rl.evaluation``), never trained or tuned on."""
HELD_OUT_DAYS = 30
MAX_TRAINING_SEED = HELD_OUT_FIRST_SEED - 1
"""An agent's training starts on the day ``reset(seed=params.seed)``, so its seed stays below the held-out range."""

# -- hyperparameters ----------------------------------------------------------------------------------------


class AgentParams(BaseModel):
    """Hyperparameters every agent accepts (the four named in the API document, plus the seed).

    Unknown names are errors, values are validated and never clamped; instances are frozen. Ranges admit both
    examples of the API document: ``{"learning_rate": 0.001, "discount_factor": 0.99}`` and
    ``{"learning_rate": 0.1, "discount_factor": 0.9, "batch_size": 32, "epochs": 100}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(gt=0.0, le=1.0)
    discount_factor: float = Field(ge=0.0, le=1.0)
    batch_size: int = Field(ge=1, le=4096)
    epochs: int = Field(ge=1, le=10_000)
    seed: int = Field(
        default=0,
        ge=0,
        le=MAX_TRAINING_SEED,
        description="seeds the agent and its first training day; held-out evaluation days start at 2,000,000,000",
    )


class QLearningParams(AgentParams):
    learning_rate: float = Field(default=0.3, gt=0.0, le=1.0, description="step size alpha of the TD update")
    discount_factor: float = Field(default=0.9, ge=0.0, le=1.0)
    batch_size: int = Field(default=32, ge=1, le=4096, description="unused: Q-learning updates online")
    epochs: int = Field(default=1, ge=1, le=10_000, description="unused: Q-learning updates online")
    epsilon_start: float = Field(default=1.0, ge=0.0, le=1.0)
    epsilon_end: float = Field(default=0.05, ge=0.0, le=1.0)
    exploration_fraction: float = Field(default=0.5, gt=0.0, le=1.0, description="share of episodes to decay")
    time_bins: int = Field(default=8, ge=1, le=96, description="buckets of the time of day")
    load_bins: int = Field(default=1, ge=1, le=16, description="buckets of the mean group load (1 = unused)")
    initial_q: float = Field(default=-36.0, ge=-1e4, le=1e4, description="initial value of every table entry")


class DQNParams(AgentParams):
    learning_rate: float = Field(default=1e-3, gt=0.0, le=1.0, description="Adam step size (see anneal_lr)")
    discount_factor: float = Field(default=0.9, ge=0.0, le=1.0)
    batch_size: int = Field(default=128, ge=1, le=4096, description="minibatch size of a gradient step")
    epochs: int = Field(default=12, ge=1, le=10_000, description="gradient steps after each episode")
    buffer_size: int = Field(default=20_000, ge=1, le=10_000_000, description="replay capacity (transitions)")
    learning_starts: int = Field(default=500, ge=0, le=10_000_000, description="transitions before learning")
    target_update_interval: int = Field(default=25, ge=1, le=1_000_000, description="gradient steps")
    tau: float = Field(default=1.0, gt=0.0, le=1.0, description="target update rate (1 = hard copy)")
    epsilon_start: float = Field(default=1.0, ge=0.0, le=1.0)
    epsilon_end: float = Field(default=0.05, ge=0.0, le=1.0)
    exploration_fraction: float = Field(default=0.4, gt=0.0, le=1.0, description="share of episodes to decay")
    hidden_size: int = Field(default=128, ge=4, le=1024)
    double_q: bool = True
    dueling: bool = Field(default=True, description="Q = V + A - mean(A): a state-value output beside the advantages")
    anneal_lr: bool = Field(default=True, description="learning rate annealed linearly to 0 over the run")
    max_grad_norm: float = Field(default=10.0, gt=0.0, le=1e6)
    reward_scale: float = Field(default=0.1, gt=0.0, le=1e3, description="rewards are multiplied by this to learn")

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> Self:
        if self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be at least batch_size ({self.batch_size})")
        return self


class PPOParams(AgentParams):
    learning_rate: float = Field(default=3e-3, gt=0.0, le=1.0, description="Adam step size")
    discount_factor: float = Field(default=0.9, ge=0.0, le=1.0)
    batch_size: int = Field(default=64, ge=1, le=4096, description="minibatch size")
    epochs: int = Field(default=8, ge=1, le=10_000, description="passes over each rollout")
    rollout_episodes: int = Field(default=4, ge=1, le=1000, description="whole episodes per rollout")
    gae_lambda: float = Field(default=0.95, ge=0.0, le=1.0)
    clip_coef: float = Field(default=0.2, gt=0.0, le=1.0)
    ent_coef: float = Field(default=0.01, ge=0.0, le=1.0)
    vf_coef: float = Field(default=0.5, ge=0.0, le=10.0)
    max_grad_norm: float = Field(default=0.5, gt=0.0, le=1e6)
    target_kl: float | None = Field(default=None, gt=0.0, le=10.0)
    anneal_lr: bool = True
    normalize_advantages: bool = True
    hidden_size: int = Field(default=64, ge=4, le=1024)
    reward_scale: float = Field(default=0.1, gt=0.0, le=1e3, description="rewards are multiplied by this to learn")


RL_PARAMS: dict[str, type[AgentParams]] = {"q_learning": QLearningParams, "dqn": DQNParams, "ppo": PPOParams}
"""model_type -> its hyperparameter model (``ml.rl.registry.AGENTS`` uses the same classes)."""

# -- API bodies ---------------------------------------------------------------------------------------------


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingRequest(StrictBody):
    """``POST /api/v1/training``."""

    name: str = Field(min_length=1, max_length=100, description="task name; also the name of the trained model")
    model_type: RLModelType
    parameters: dict[str, Any] = Field(description="hyperparameters of model_type, validated per type")
    total_episodes: int = Field(ge=1, le=MAX_EPISODES)
    wandb_project: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")
    wandb_run_name: str | None = Field(None, min_length=1, max_length=128)

    def params(self) -> AgentParams:
        """``parameters`` validated for ``model_type`` (raises pydantic ValidationError)."""
        return RL_PARAMS[self.model_type].model_validate(self.parameters)


_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)m?$")
_MEMORY = re.compile(r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_FACTOR = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def cpu_cores(quantity: str) -> float:
    """``"500m"`` -> 0.5, ``"2"`` -> 2.0 (Kubernetes CPU quantity)."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_bytes(quantity: str) -> float:
    match = _MEMORY.match(quantity)
    if match is None:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * _MEMORY_FACTOR[match.group(3)]


class Resources(StrictBody):
    """Per-replica CPU and memory (Kubernetes quantities); used as both request and limit."""

    cpu: str = Field("500m", description='CPU cores: "1", "0.5" or "500m"; 10m to 64 cores')
    memory: str = Field("512Mi", description='memory: "1Gi", "512Mi", "1G"...; 32Mi to 256Gi')

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu_number(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        if not _CPU.match(value):
            raise ValueError('cpu must be a Kubernetes CPU quantity such as "1", "0.5" or "500m"')
        if not 0.01 <= cpu_cores(value) <= 64:
            raise ValueError("cpu must be between 10m and 64 cores")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError('memory must be a Kubernetes quantity such as "1Gi", "512Mi" or "1G"')
        if not 32 * 2**20 <= memory_bytes(value) <= 256 * 2**30:
            raise ValueError("memory must be between 32Mi and 256Gi")
        return value


DeployStrategy = Literal["rolling", "recreate"]


class DeployRequest(StrictBody):
    """``POST /api/v1/models/{model_id}/deploy``."""

    replicas: int = Field(1, ge=1, le=50)
    resources: Resources = Field(default_factory=Resources)
    strategy: DeployStrategy = Field("rolling", description="rolling = RollingUpdate (no downtime), recreate")
    namespace: str | None = Field(
        None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="default: MODELBUS_K8S_NAMESPACE"
    )


class ActRequest(StrictBody):
    """``POST /api/v1/models/{model_id}/act``: one observation in, one placement decision out."""

    observation: list[float] = Field(min_length=1, max_length=4096)
    current_replicas: list[int] | None = Field(
        None, max_length=256, description="replicas per node now; the answer then includes the placement after"
    )

    @field_validator("observation")
    @classmethod
    def _finite(cls, value: list[float]) -> list[float]:
        if any(v != v or v in (float("inf"), float("-inf")) for v in value):
            raise ValueError("observation values must be finite numbers")
        return value


# -- events -------------------------------------------------------------------------------------------------

EPISODE_RECORDED = "modelbus.rl.episode.recorded"
MODEL_STATUS_CHANGED = "modelbus.model.status_changed"
DEPLOY_REQUESTED = "modelbus.deploy.rl.requested"
UNDEPLOY_REQUESTED = "modelbus.deploy.rl.undeploy_requested"
DEPLOYED = "modelbus.deploy.rl.deployed"
DEPLOY_FAILED = "modelbus.deploy.rl.failed"
UNDEPLOYED = "modelbus.deploy.rl.undeployed"
ACT_SERVED = "modelbus.rl.act.served"

DEPLOY_STEP = 10
"""Deployment event sequence = generation * DEPLOY_STEP + step (requested 0, outcome 1)."""

RLModelStatus = Literal["trained", "deploying", "deployed", "archived"]


class EpisodeRecorded(Payload):
    """One finished training episode (``EpisodeStats`` of ``ml.rl``) of a job attempt."""

    job_id: str
    attempt: int
    episode: int = Field(ge=0, description="0-based index within the attempt")
    total_episodes: int | None = None
    reward: float
    steps: int
    latency_ms: float = Field(description="mean user latency over the episode's steps, milliseconds")
    cost: float
    overload: float
    loss: float | None = None
    epsilon: float | None = None
    entropy: float | None = None


class ModelStatusChanged(Payload):
    """A registry status change; applied only when ``status_version`` is the model's current one + 1."""

    model_id: str
    status: str
    previous_status: str
    status_version: int = Field(ge=2)
    actor: str | None = None
    reason: str | None = None
    deployment: dict[str, Any] | None = None


class DeploymentSpec(BaseModel):
    """What is deployed: where, how many, how big, and the generated manifests."""

    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str
    replicas: int
    resources: Resources
    strategy: DeployStrategy
    target: Literal["kubernetes", "local"]
    manifests: list[dict[str, Any]]


class DeployRequested(Payload):
    model_id: str
    generation: int = Field(description="the status_version this deployment moves the model to (deploying)")
    previous_status: str
    deployment: DeploymentSpec
    requested_by: str | None = None
    requested_at: UtcDatetime


class UndeployRequested(Payload):
    model_id: str
    generation: int
    previous_status: str
    reason: str = "undeployed on request"
    requested_by: str | None = None


class DeploymentChanged(Payload):
    """deployed / failed / undeployed: the outcome of a deploy or undeploy command."""

    model_id: str
    generation: int
    status: Literal["deployed", "failed", "undeployed"]
    target: Literal["kubernetes", "local"]
    worker_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class ActServed(Payload):
    """One ``rl.act`` request answered by a serving worker (metrics come from these)."""

    prediction_id: str
    model_id: str
    action: int | None = None
    latency_ms: float = Field(description="time the worker spent on the request, milliseconds")
    worker_id: str
    error: str | None = None


def status_changed(
    model_id: str,
    status: str,
    previous: str,
    version: int,
    *,
    source: str,
    actor: str | None,
    reason: str | None,
    deployment: dict[str, Any] | None = None,
    cause: Envelope | None = None,
) -> Envelope:
    """The ``model.events`` envelope of an RL model status change; its sequence is the new
    ``status_version`` (claimed first with ``infra.claims.claim_status``)."""
    payload = ModelStatusChanged(
        model_id=model_id,
        status=status,
        previous_status=previous,
        status_version=version,
        actor=actor,
        reason=reason,
        deployment=deployment,
    )
    return Envelope.wrap(MODEL_STATUS_CHANGED, model_id, payload, source=source, sequence=version, cause=cause)
