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

from schemas.common import JsonFloat, JsonInt, UtcDatetime, document_zero_bounds, per_type_rules
from schemas.envelope import Payload
from schemas.rpc import RpcKind

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

    learning_rate: JsonFloat = Field(gt=0.0, le=1.0)
    discount_factor: JsonFloat = Field(ge=0.0, le=1.0)
    batch_size: JsonInt = Field(ge=1, le=4096)
    epochs: JsonInt = Field(ge=1, le=10_000)
    seed: JsonInt = Field(
        default=0,
        ge=0,
        le=MAX_TRAINING_SEED,
        description="seeds the agent and its first training day; held-out evaluation days start at 2,000,000,000",
    )


class QLearningParams(AgentParams):
    learning_rate: JsonFloat = Field(default=0.3, gt=0.0, le=1.0, description="step size alpha of the TD update")
    discount_factor: JsonFloat = Field(default=0.9, ge=0.0, le=1.0)
    batch_size: JsonInt = Field(default=32, ge=1, le=4096, description="unused: Q-learning updates online")
    epochs: JsonInt = Field(default=1, ge=1, le=10_000, description="unused: Q-learning updates online")
    epsilon_start: JsonFloat = Field(default=1.0, ge=0.0, le=1.0)
    epsilon_end: JsonFloat = Field(default=0.05, ge=0.0, le=1.0)
    exploration_fraction: JsonFloat = Field(default=0.5, gt=0.0, le=1.0, description="share of episodes to decay")
    time_bins: JsonInt = Field(default=8, ge=1, le=96, description="buckets of the time of day")
    load_bins: JsonInt = Field(default=1, ge=1, le=16, description="buckets of the mean group load (1 = unused)")
    initial_q: JsonFloat = Field(default=-36.0, ge=-1e4, le=1e4, description="initial value of every table entry")


class DQNParams(AgentParams):
    learning_rate: JsonFloat = Field(default=1e-3, gt=0.0, le=1.0, description="Adam step size (see anneal_lr)")
    discount_factor: JsonFloat = Field(default=0.9, ge=0.0, le=1.0)
    batch_size: JsonInt = Field(default=128, ge=1, le=4096, description="minibatch size of a gradient step")
    epochs: JsonInt = Field(default=12, ge=1, le=10_000, description="gradient steps after each episode")
    buffer_size: JsonInt = Field(default=20_000, ge=1, le=10_000_000, description="replay capacity (transitions)")
    learning_starts: JsonInt = Field(default=500, ge=0, le=10_000_000, description="transitions before learning")
    target_update_interval: JsonInt = Field(default=25, ge=1, le=1_000_000, description="gradient steps")
    tau: JsonFloat = Field(default=1.0, gt=0.0, le=1.0, description="target update rate (1 = hard copy)")
    epsilon_start: JsonFloat = Field(default=1.0, ge=0.0, le=1.0)
    epsilon_end: JsonFloat = Field(default=0.05, ge=0.0, le=1.0)
    exploration_fraction: JsonFloat = Field(default=0.4, gt=0.0, le=1.0, description="share of episodes to decay")
    hidden_size: JsonInt = Field(default=128, ge=4, le=1024)
    double_q: bool = True
    dueling: bool = Field(default=True, description="Q = V + A - mean(A): a state-value output beside the advantages")
    anneal_lr: bool = Field(default=True, description="learning rate annealed linearly to 0 over the run")
    max_grad_norm: JsonFloat = Field(default=10.0, gt=0.0, le=1e6)
    reward_scale: JsonFloat = Field(default=0.1, gt=0.0, le=1e3, description="rewards are multiplied by this to learn")

    @model_validator(mode="after")
    def _buffer_holds_a_batch(self) -> Self:
        if self.buffer_size < self.batch_size:
            raise ValueError(f"buffer_size ({self.buffer_size}) must be at least batch_size ({self.batch_size})")
        return self


class PPOParams(AgentParams):
    learning_rate: JsonFloat = Field(default=3e-3, gt=0.0, le=1.0, description="Adam step size")
    discount_factor: JsonFloat = Field(default=0.9, ge=0.0, le=1.0)
    batch_size: JsonInt = Field(default=64, ge=1, le=4096, description="minibatch size")
    epochs: JsonInt = Field(default=8, ge=1, le=10_000, description="passes over each rollout")
    rollout_episodes: JsonInt = Field(default=4, ge=1, le=1000, description="whole episodes per rollout")
    gae_lambda: JsonFloat = Field(default=0.95, ge=0.0, le=1.0)
    clip_coef: JsonFloat = Field(default=0.2, gt=0.0, le=1.0)
    ent_coef: JsonFloat = Field(default=0.01, ge=0.0, le=1.0)
    vf_coef: JsonFloat = Field(default=0.5, ge=0.0, le=10.0)
    max_grad_norm: JsonFloat = Field(default=0.5, gt=0.0, le=1e6)
    target_kl: JsonFloat | None = Field(default=None, gt=0.0, le=10.0)
    anneal_lr: bool = True
    normalize_advantages: bool = True
    hidden_size: JsonInt = Field(default=64, ge=4, le=1024)
    reward_scale: JsonFloat = Field(default=0.1, gt=0.0, le=1e3, description="rewards are multiplied by this to learn")


RL_PARAMS: dict[str, type[AgentParams]] = {"q_learning": QLearningParams, "dqn": DQNParams, "ppo": PPOParams}
"""model_type -> its hyperparameter model (``ml.rl.registry.AGENTS`` uses the same classes)."""

# -- API bodies ---------------------------------------------------------------------------------------------


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingRequest(StrictBody):
    """``POST /api/v1/training``. ``parameters`` are checked against the model type's own hyperparameters (the
    if/then/else on ``model_type``). Not in the schema (a rule across two fields, 422 VALIDATION_ERROR): for dqn,
    ``buffer_size`` must be at least ``batch_size``."""

    model_config = ConfigDict(
        json_schema_extra={
            **per_type_rules("model_type", "parameters", RL_PARAMS),
            "description": "parameters are the model type's own hyperparameters (the if/then/else on model_type). "
            "A rule the schema does not state (422 VALIDATION_ERROR): for dqn, buffer_size must be at least "
            "batch_size.",
            "examples": [
                {
                    "name": "test-training",
                    "model_type": "dqn",
                    "parameters": {"learning_rate": 0.001, "discount_factor": 0.99},
                    "total_episodes": 1000,
                }
            ],
        }
    )  # the seed's example

    name: str = Field(min_length=1, max_length=100, description="task name; also the name of the trained model")
    model_type: RLModelType
    parameters: dict[str, Any] = Field(
        description="hyperparameters of model_type (QLearningParams, DQNParams or PPOParams), validated per type; "
        "omitted ones take their defaults; for dqn, buffer_size must be at least batch_size"
    )
    total_episodes: JsonInt = Field(ge=1, le=MAX_EPISODES)
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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"replicas": 3, "resources": {"cpu": "1", "memory": "1Gi"}, "strategy": "rolling"}]
        }
    )  # the seed's example

    replicas: JsonInt = Field(1, ge=1, le=50)
    resources: Resources = Field(default_factory=Resources)
    strategy: DeployStrategy = Field("rolling", description="rolling = RollingUpdate (no downtime), recreate")
    namespace: str | None = Field(
        None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="default: MODELBUS_K8S_NAMESPACE"
    )


class ActRequest(StrictBody):
    """``POST /api/v1/models/{model_id}/act``: one observation in, one placement decision out."""

    observation: list[JsonFloat] = Field(min_length=1, max_length=4096)
    current_replicas: list[JsonInt] | None = Field(
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


# -- API responses ------------------------------------------------------------------------------------------
# Times are ``schemas.common.iso`` strings ("2026-12-06T19:30:03.564Z"), typed ``str`` so the wire keeps them.

TaskStatus = Literal["created", "pending", "running", "cancelling", "completed", "failed", "cancelled"]
DeploymentStatus = Literal["deploying", "undeploying", "deployed", "failed", "undeployed"]
DeployTarget = Literal["kubernetes", "local"]


class RLTaskCreated(BaseModel):
    """``POST /api/v1/training``: the accepted training task."""

    task_id: str
    status: Literal["created"]
    created_at: str
    estimated_duration_minutes: float = Field(
        description="episodes × minutes per episode, learnt from the last 20 completed tasks of this model type"
    )


class EpisodeMetrics(BaseModel):
    """Per-episode series of a training task, one entry per finished episode in order."""

    episode_rewards: list[float] = Field(description="total reward of each episode (4 decimals)")
    episode_steps: list[int] = Field(description="steps of each episode")
    episode_latencies: list[float] = Field(description="mean user latency of each episode, seconds")


class RLTrainingTask(BaseModel):
    """``GET /api/v1/training/{task_id}``: a training task with its per-episode metrics."""

    task_id: str
    name: str | None = Field(description="task name; also the name of the trained model")
    model_type: str
    status: TaskStatus = Field(
        description="created (waiting for a worker), pending (waiting again after a worker was lost), running, "
        "cancelling (cancel requested, the worker has not stopped yet), completed, failed, cancelled"
    )
    progress: float = Field(description="fraction of the episodes done (0..1); 1.0 once completed")
    current_episode: int = Field(description="episodes finished so far")
    total_episodes: int
    metrics: EpisodeMetrics
    model_id: str | None = Field(description="the registered model once completed, else null")
    created_at: str | None
    updated_at: str | None = Field(description="last change of the task or its latest episode")
    evaluation: dict[str, Any] | None = Field(
        None,
        description="completed tasks: the held-out evaluation figures (ml.rl.evaluation) and their verdict; "
        "null otherwise",
    )
    error: str | None = Field(None, description="failed or cancelled tasks: why; null otherwise")


class RLTaskCancel(BaseModel):
    """``POST /api/v1/training/{task_id}/cancel``: cancelled (200) or still cancelling (202)."""

    task_id: str
    status: Literal["cancelled", "cancelling"]
    updated_at: str | None


class RLModelSummary(BaseModel):
    """An RL model in the model list."""

    model_id: str
    name: str = Field(description="the training task's name")
    type: str = Field(description="model type: q_learning, dqn or ppo")
    status: RLModelStatus
    version: str
    metrics: dict[str, Any] = Field(
        description="held-out evaluation summary: mean_reward, normalised_score (0 = random, 1 = greedy) and its "
        "95% interval, latency (seconds), latency_ms, cost, overload, the baselines and the comparison with greedy"
    )
    task_id: str | None = Field(description="the training task that produced the model")
    created_at: str | None = Field(description="when the model was trained")
    deployed_at: str | None = Field(description="when it was last deployed, else null")


class DeploymentResources(BaseModel):
    """Per-replica CPU and memory of a deployment (Kubernetes quantities)."""

    cpu: str
    memory: str


class RLDeploymentRequested(BaseModel):
    """What a deploy request asked for."""

    name: str = Field(description="Kubernetes Deployment name")
    namespace: str
    replicas: int
    resources: DeploymentResources
    strategy: DeployStrategy
    target: DeployTarget = Field(description="kubernetes with MODELBUS_KUBECONFIG, else the local serving workers")


class RLDeployment(RLDeploymentRequested):
    """The current deployment of an RL model: what was requested, and how it went."""

    status: DeploymentStatus
    requested_at: str | None
    deployed_at: str | None
    error: str | None = Field(description="why the deployment failed, else null")
    detail: dict[str, Any] = Field(description="what the deploy worker reported (target-specific)")


class RLModelDetail(RLModelSummary):
    """``GET /api/v1/models/{model_id}``: one RL model with its lineage, history and deployment."""

    metrics: dict[str, Any] = Field(description="every held-out evaluation figure of the model")
    lineage: dict[str, Any] = Field(description="task, hyperparameters, library versions, W&B run, ...")
    artifact_sha256: str | None
    status_version: int | None = Field(description="compare-and-set version of the status (one per change)")
    history: list[dict[str, Any]] = Field(
        description="status changes, oldest first: status, from, status_version, at, actor, reason"
    )
    deployment: RLDeployment | None = Field(description="null if the model was never deployed")


class RLModelList(BaseModel):
    """``GET /api/v1/models``: one page of RL models, newest first."""

    models: list[RLModelSummary]
    total: int = Field(description="models matching the filter, over all pages")
    page: int
    per_page: int


class RLDeployAccepted(BaseModel):
    """``POST /api/v1/models/{model_id}/deploy``: the deployment is under way."""

    model_id: str
    status: Literal["deploying"]
    deployment: RLDeploymentRequested
    created_at: str


class RLUndeployAccepted(BaseModel):
    """``POST /api/v1/models/{model_id}/undeploy``: the model is archived."""

    model_id: str
    status: Literal["archived"]
    updated_at: str


class ManifestList(BaseModel):
    """A Kubernetes v1 List of the generated objects (Deployment and Service)."""

    apiVersion: str = Field(description="v1 (the Kubernetes field name)")
    kind: str
    items: list[dict[str, Any]]


class RLManifest(BaseModel):
    """``GET /api/v1/models/{model_id}/manifest`` (format=json): the deployment and its manifests."""

    model_id: str
    deployment: RLDeployment
    manifest: ManifestList


class RLPlacement(BaseModel):
    """What an action means in the default scenario, and the placement after it if the request gave one."""

    operation: Literal["none", "add_replica", "remove_replica"]
    node: str | None = Field(description="the node changed, null for none")
    node_index: int | None
    replicas_before: list[int] | None = Field(None, description="current_replicas of the request, else null")
    replicas: list[int] | None = Field(None, description="replicas per node after the action, else null")
    valid: bool | None = Field(None, description="whether the action could be applied, else null")
    nodes: list[str] = Field(description="node names, in the order of the replica lists")


class RLActDecision(BaseModel):
    """``POST /api/v1/models/{model_id}/act``: the placement decision of a deployed agent."""

    model_id: str
    model_type: str
    action: int = Field(description="0 no-op, 1..N add a replica on node a-1, N+1..2N remove one from node a-N-1")
    placement: RLPlacement
    worker_id: str = Field(description="the serving worker that answered")
    latency_ms: float = Field(description="time the worker spent on the request, milliseconds")


class RLJobSpec(BaseModel):
    """The ``spec`` of an RL ``TrainRequested``: the task name, the validated parameters, the episodes and the
    optional Weights & Biases run."""

    name: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    total_episodes: int
    wandb_project: str | None = None
    wandb_run_name: str | None = None


class ActBody(ActRequest):
    """``rl.act`` request body: the observation for the deployed agent ``model_id``."""

    model_id: str


RL_ACT = RpcKind("rl.act", ActBody, RLActDecision)


class Series(BaseModel):
    """A time series: one value per interval with data, and the interval starts."""

    values: list[float | None]
    timestamps: list[str]


class ResourceSeries(BaseModel):
    """CPU and memory series, fractions (0..1) of the machine."""

    cpu: Series
    memory: Series


class ModelMetricSeries(BaseModel):
    """Latency, throughput and resource series of a deployed model."""

    latency: Series = Field(description="mean seconds per request")
    throughput: Series = Field(description="requests per second over each interval")
    resource_usage: ResourceSeries = Field(description="mean fraction used by the workers holding the model")


class RLModelMetrics(BaseModel):
    """``GET /api/v1/models/{model_id}/metrics``: served-request and resource series of a model."""

    model_id: str
    metrics: ModelMetricSeries
    requests: int = Field(description="requests served in the window")
    errors: int = Field(description="requests that failed in the window")
    interval: Literal["1m", "5m", "1h"]
    start_time: str
    end_time: str


class SystemSeries(BaseModel):
    """Mean machine CPU and memory (fractions) reported by the workers."""

    cpu_usage: Series
    memory_usage: Series


class ClusterUsage(BaseModel):
    """CPU and memory share (0..1): the hosts' mean use, or the pods' requested share of the cluster."""

    cpu: float | None
    memory: float | None


class ClusterView(BaseModel):
    """The Kubernetes cluster with MODELBUS_KUBECONFIG, else the live local workers (pods = worker processes)."""

    node_count: int
    pod_count: int
    resource_usage: ClusterUsage
    source: str = Field(description="where the figures come from")
    kubernetes_error: str | None = Field(
        None, description="the error class when the cluster could not be read (local figures then), else null"
    )


class WorkersView(BaseModel):
    """The live workers and the models they serve."""

    alive: int
    serving_models: list[str]


class TrainingFigures(BaseModel):
    """RL training tasks: how many are active or completed, and how long one takes."""

    active_tasks: int
    completed_tasks: int
    average_training_time: str | None = Field(description='mean duration of completed tasks, e.g. "2h05m", "3m07s"')
    average_training_seconds: float | None


class RLSystemMetrics(BaseModel):
    """``GET /api/v1/metrics``: system CPU/memory series, workers (pods) and training figures."""

    system: SystemSeries
    kubernetes: ClusterView
    workers: WorkersView
    training: TrainingFigures
    interval: Literal["1m", "5m", "1h"]
    start_time: str
    end_time: str


document_zero_bounds(globals())
