"""RL edge-placement agents in the workers: the training runner, serving, deployment and worker samples.

* Training (``train_agent``, domain ``rl``, runs in a training pool process): builds the agent of the job's
  ``model_type`` and ``parameters`` (``ml.rl``), fits it on the default scenario and reports every episode
  through ``report(pct, {"episodes": [...]})``; the training worker publishes them on ``rl.episodes`` and the
  report is where a cancel request stops training, at the end of the episode that just finished. The outcome:
  the artifact, its evaluation on the 30 held-out days (``ml.rl.evaluation``: never trained or tuned on) beside
  random, greedy and the best static placement on the same days, with intervals over days, the comparison with
  greedy day by day and a plain verdict, and the lineage.
  With ``wandb_project`` and wandb installed, every episode is logged to Weights & Biases (offline unless
  ``WANDB_API_KEY`` is set); a W&B failure is logged and training goes on.
* Serving (kind ``rl.act``): an observation in, an action and the placement it means out. A worker serves a
  model whose registry status is ``deployed``; it loads the artifact from GridFS on first use (sha256
  checked) and keeps it. Every answer is an ``ActServed`` event on ``predict.served`` (the model metrics).
* Deployment (``deploy.commands``): with ``MODELBUS_KUBECONFIG`` the manifests in the command are applied with
  the Kubernetes client and the rollout is awaited; otherwise the agent is loaded and checked in this worker
  and every local serving worker serves it. Then ``deploy.events`` says deployed (or failed), the model moves
  to ``deployed`` (or back), and an older deployed model of the same deployment name is archived.
* Samples: every ``sample_interval_seconds`` a serving worker writes its CPU and memory (and the machine's)
  with the models it holds to ``worker_samples`` (TTL): resource series of ``/api/v1/.../metrics``.

Model status changes are compare-and-set: a change to ``status_version`` v is claimed in ``status_claims``
(unique ``model_id@v``) before its event is published, so two writers cannot both move a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from consumers.deps import Deps
from consumers.serving import ServingService
from infra import artifacts, mongo
from infra.claims import claim_status
from infra.periodic import Periodic
from producers.publisher import envelope_headers, log_failures
from schemas import jobs, rl
from schemas.common import new_id, utcnow
from schemas.envelope import Envelope
from schemas.errors import ApiError

log = logging.getLogger("modelbus.rl")

STATUS_CACHE_SECONDS = 1.0

# -- naming -------------------------------------------------------------------------------------------------


def rl_model_name(cmd: jobs.TrainRequested, n: int) -> tuple[str, str, str]:
    """``rl_<model_type>_v1.N.0`` / ``1.N.0`` / the task name (N counts per model type)."""
    version = f"1.{n}.0"
    return f"rl_{cmd.model_type}_v{version}", version, rl.RLJobSpec.model_validate(cmd.spec).name or cmd.model_type


# -- training (in a training pool process) ------------------------------------------------------------------


class WandbLogger:
    """Per-episode figures to Weights & Biases; every failure is logged and switches the logger off."""

    def __init__(self) -> None:
        self.run: Any = None
        self.info: dict[str, Any] = {"enabled": False}

    @classmethod
    def start(cls, spec: rl.RLJobSpec, command: jobs.TrainRequested, params: dict[str, Any]) -> WandbLogger:
        logger = cls()
        project = spec.wandb_project
        if not project:
            return logger
        try:
            import wandb
        except ImportError:
            logger.info = {"enabled": False, "project": project, "reason": "wandb is not installed"}
            return logger
        mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        try:
            # offline runs go to $WANDB_DIR or the data directory (``wandb sync`` uploads them later)
            directory = os.environ.get("WANDB_DIR") or os.environ.get("MODELBUS_DATA_DIR", ".modelbus")
            os.makedirs(directory, exist_ok=True)
            logger.run = wandb.init(
                project=project,
                name=spec.wandb_run_name,
                mode=mode,
                dir=directory,
                job_type="train",
                tags=[command.model_type, "modelbus"],
                config={
                    "task_id": command.job_id,
                    "attempt": command.attempt,
                    "model_type": command.model_type,
                    "total_episodes": spec.total_episodes,
                    **params,
                },
                settings=wandb.Settings(silent=True, console="off"),
            )
            logger.info = {
                "enabled": True,
                "mode": mode,
                "project": project,
                "run_name": logger.run.name,
                "run_id": logger.run.id,
                "dir": str(logger.run.dir),
            }
        except Exception as exc:  # noqa: BLE001 - training never fails because of W&B
            log.warning("wandb init failed; training goes on without it", extra={"error": repr(exc)})
            logger.info = {"enabled": False, "project": project, "error": f"{exc.__class__.__name__}: {exc}"}
        return logger

    def log(self, figures: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.log(
                {k: v for k, v in figures.items() if v is not None and k != "episode"}, step=figures["episode"]
            )
        except Exception as exc:  # noqa: BLE001
            log.warning("wandb log failed; W&B logging stops", extra={"error": repr(exc)})
            self.info |= {"error": f"{exc.__class__.__name__}: {exc}"}
            self.finish(exit_code=1)

    def summary(self, figures: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(figures)
        except Exception as exc:  # noqa: BLE001
            log.warning("wandb summary failed", extra={"error": repr(exc)})

    def finish(self, exit_code: int = 0) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001
            log.warning("wandb finish failed", extra={"error": repr(exc)})


def warm_up() -> None:
    """A one-episode fit of each torch agent and the baselines, in a fresh pool process: torch's lazy set-up
    (about 1.5 s) and the baseline evaluation happen at pool start instead of in the first task."""
    from ml.rl import create_agent

    create_agent("dqn", {"learning_starts": 0, "batch_size": 8, "epochs": 1}).fit(None, 1)
    create_agent("ppo", {"batch_size": 8, "epochs": 1, "rollout_episodes": 1}).fit(None, 1)
    _baselines()


_BASELINES: dict[str, Any] = {}


def _baselines() -> Any:
    """The baselines on the held-out days of the default scenario (deterministic; once per process)."""
    if "held_out" not in _BASELINES:
        from ml.rl.evaluation import held_out_baselines

        _BASELINES["held_out"] = held_out_baselines()
    return _BASELINES["held_out"]


def train_agent(mongodb_url: str, db_name: str, command: jobs.TrainRequested, report: Any) -> jobs.TrainingOutcome:
    """Runner of domain ``rl`` (see the module doc). ``mongodb_url``/``db_name`` are unused: the
    environment is simulated, no data is read."""
    import platform

    import gymnasium
    import numpy
    import torch

    from ml.base import TrainingCancelled
    from ml.rl import create_agent, default_scenario
    from ml.rl.evaluation import check_days_disjoint, evaluate_held_out

    spec = rl.RLJobSpec.model_validate(command.spec)
    model_type = command.model_type
    total = spec.total_episodes
    agent = create_agent(model_type, spec.parameters)
    check_days_disjoint(agent.params.seed)
    params = agent.params.model_dump(mode="json")
    wandb_log = WandbLogger.start(spec, command, params)

    def on_episode(stats: Any) -> None:
        figures = stats.as_dict()
        wandb_log.log(figures)
        report(
            100.0 * (stats.episode + 1) / total,
            {
                "episodes_done": stats.episode + 1,
                "total_episodes": total,
                "reward": round(stats.reward, 4),
                "latency_ms": round(stats.latency_ms, 3),
                "episodes": [figures | {"total_episodes": total}],
            },
        )

    t0 = time.perf_counter()
    try:
        agent.fit(None, total, on_episode=on_episode)
    except TrainingCancelled:
        wandb_log.finish(exit_code=1)
        raise
    except BaseException:
        wandb_log.finish(exit_code=1)
        raise
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    held_out = evaluate_held_out(agent.act, baselines=_baselines())
    eval_s = time.perf_counter() - t1
    artifact = agent.to_bytes()
    metrics = {
        **held_out.as_metrics(),
        "training_episodes": total,
        "training_seconds": round(fit_s, 3),
    }
    verdict = held_out.verdict(model_type)
    wandb_log.summary({f"eval/{k}": v for k, v in metrics.items() if v is not None} | {"eval/verdict": verdict})
    wandb_info = dict(wandb_log.info)
    wandb_log.finish(exit_code=0)
    scenario = default_scenario()
    scenario_json = scenario.model_dump_json()
    return jobs.TrainingOutcome(**{
        "artifact": artifact,
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "metrics": metrics,
        "result": {
            "held_out": held_out.as_dict(),
            "verdict": verdict,
            "normalised_score": metrics["normalised_score"],
            "score_meaning": "0 = random policy, 1 = greedy one-step lookahead, on the held-out days (docs/rl.md)",
            "timings_seconds": {"fit": round(fit_s, 3), "evaluate": round(eval_s, 3)},
            "wandb": wandb_info,
        },
        "lineage": {
            "task_name": spec.name,
            "scenario": scenario.name,
            "scenario_sha256": hashlib.sha256(scenario_json.encode()).hexdigest(),
            "hyperparameters": params,
            "total_episodes": total,
            "evaluation": {
                "days": "held-out",
                "episodes": held_out.days,
                "first_seed": held_out.agent.seeds[0],
                "training_seed": agent.params.seed,
                "disjoint_from_training_and_validation": True,
            },
            "library_versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "gymnasium": gymnasium.__version__,
                "numpy": numpy.__version__,
            },
            "wandb": wandb_info,
            "observation_size": agent.observation_shape[0] if agent.observation_shape else None,
            "n_actions": agent.n_actions,
        },
    })


# -- serving ----------------------------------------------------------------------------------------------------


@dataclass
class LoadedAgent:
    model_id: str
    model_type: str
    sha256: str
    agent: Any
    loaded_at: datetime = field(default_factory=utcnow)


class _Placement:
    """Decodes actions of the default scenario: 0 no-op, 1..N add on node a-1, N+1..2N remove from node a-N-1."""

    def __init__(self) -> None:
        from ml.rl import default_scenario
        from ml.rl.env import PlacementModel

        scenario = default_scenario()
        self.nodes = [node.name for node in scenario.nodes]
        self.caps = scenario.max_replicas()
        self.model = PlacementModel(scenario)

    def describe(self, action: int, current: list[int] | None) -> dict[str, Any]:
        import numpy as np

        n = len(self.nodes)
        if action == 0:
            out: dict[str, Any] = {"operation": "none", "node": None, "node_index": None}
        elif action <= n:
            out = {"operation": "add_replica", "node": self.nodes[action - 1], "node_index": action - 1}
        else:
            out = {"operation": "remove_replica", "node": self.nodes[action - n - 1], "node_index": action - n - 1}
        if current is not None:
            if len(current) != n or any(not 0 <= r <= cap for r, cap in zip(current, self.caps, strict=True)):
                raise ApiError(
                    422,
                    "VALIDATION_ERROR",
                    f"current_replicas must list {n} nodes {self.nodes} with 0..{self.caps} replicas",
                    field="current_replicas",
                )
            after, valid = self.model.apply_action(np.asarray(current, dtype=np.int64), action)
            out |= {"replicas_before": list(current), "replicas": [int(x) for x in after], "valid": bool(valid)}
        return out | {"nodes": self.nodes}


class RLServing:
    """``rl.act`` handler and the agents this worker holds."""

    def __init__(self, deps: Deps, serving: ServingService) -> None:
        self.deps = deps
        self.db = deps.db
        self.agents: dict[str, LoadedAgent] = {}
        self._docs: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._placement: _Placement | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        serving.add(rl.RL_ACT, self.act)

    async def model_doc(self, model_id: str, *, fresh: bool = False) -> dict[str, Any] | None:
        hit = self._docs.get(model_id)
        if hit is not None and not fresh and time.monotonic() - hit[0] < STATUS_CACHE_SECONDS:
            return hit[1]
        doc = await self.db[mongo.MODELS].find_one(
            {"_id": model_id},
            {"domain": 1, "status": 1, "model_type": 1, "artifact_id": 1, "artifact_sha256": 1, "status_version": 1},
        )
        self._docs[model_id] = (time.monotonic(), doc)
        if len(self._docs) > 1000:
            self._docs.pop(next(iter(self._docs)))
        return doc

    async def load(self, model_id: str, doc: dict[str, Any]) -> LoadedAgent:
        """The agent of ``model_id``, from memory or GridFS (sha256 checked, loaded in a thread)."""
        loaded = self.agents.get(model_id)
        if loaded is not None and loaded.sha256 == doc["artifact_sha256"]:
            return loaded
        lock = self._locks.setdefault(model_id, asyncio.Lock())
        async with lock:
            loaded = self.agents.get(model_id)
            if loaded is not None and loaded.sha256 == doc["artifact_sha256"]:
                return loaded
            data = await artifacts.model_artifact(self.db, doc | {"model_id": model_id})
            sha = doc["artifact_sha256"]
            agent = await asyncio.to_thread(_load_agent, data, doc["model_type"])
            loaded = LoadedAgent(model_id=model_id, model_type=doc["model_type"], sha256=sha, agent=agent)
            self.agents[model_id] = loaded
            log.info("agent loaded", extra={"model_id": model_id, "worker_id": self.deps.worker_id})
            return loaded

    def drop(self, model_id: str) -> None:
        self.agents.pop(model_id, None)
        self._docs.pop(model_id, None)

    async def act(self, request: rl.ActBody, env: Envelope) -> rl.RLActDecision:
        t0 = time.perf_counter()
        model_id = request.model_id
        doc = await self.model_doc(model_id)
        if doc is None or doc.get("status") != "deployed":  # a refusal is always checked on a fresh read
            doc = await self.model_doc(model_id, fresh=True)
        if doc is None or doc.get("domain") != "rl":
            raise ApiError(404, "MODEL_NOT_FOUND", f"no RL model {model_id!r}", field="model_id")
        if doc["status"] != "deployed":
            self.drop(model_id)
            raise ApiError(
                409, "MODEL_NOT_DEPLOYED", f"model {model_id} is {doc['status']}, not deployed", field="model_id"
            )
        error: str | None = None
        action: int | None = None
        try:
            loaded = await self.load(model_id, doc)
            size = loaded.agent.observation_shape[0]
            if len(request.observation) != size:
                raise ApiError(
                    422,
                    "VALIDATION_ERROR",
                    f"observation must have {size} values (EdgePlacement-v0 layout), got {len(request.observation)}",
                    field="observation",
                    expected_length=size,
                )
            action = int(loaded.agent.act(request.observation))
            if self._placement is None:
                self._placement = _Placement()
            placement = self._placement.describe(action, request.current_replicas)
        except ApiError as exc:
            error = exc.code
            raise
        except Exception as exc:
            error = exc.__class__.__name__
            raise
        finally:
            latency_ms = (time.perf_counter() - t0) * 1000
            self._spawn(self._served(model_id, action, latency_ms, error, env))
        return rl.RLActDecision(
            model_id=model_id,
            model_type=loaded.model_type,
            action=action,
            placement=placement,
            worker_id=self.deps.worker_id,
            latency_ms=round(latency_ms, 3),
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _served(
        self, model_id: str, action: int | None, latency_ms: float, error: str | None, cause: Envelope
    ) -> None:
        prediction_id = new_id("act")
        payload = rl.ActServed(
            prediction_id=prediction_id,
            model_id=model_id,
            action=action,
            latency_ms=round(latency_ms, 4),
            worker_id=self.deps.worker_id,
            error=error,
        )
        env = Envelope.wrap(
            rl.ACT_SERVED, prediction_id, payload, source=f"modelbus/worker/{self.deps.worker_id}", cause=cause
        )
        ack = self.deps.publisher.send_direct(
            "predict.served", env.to_bytes(), key=prediction_id, headers=envelope_headers(env), lingering=True
        )
        log_failures([ack], f"publishing a served event of {model_id}")  # the answer went out; only the metric is lost

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _load_agent(data: bytes, model_type: str) -> Any:
    from ml.rl import load_agent

    return load_agent(data, model_type)


# -- deployment ---------------------------------------------------------------------------------------------


class RLDeployer:
    """Performs RL deploy/undeploy commands (see the module doc)."""

    def __init__(self, deps: Deps, serving: RLServing) -> None:
        self.deps = deps
        self.db = deps.db
        self.settings = deps.settings
        self.serving = serving
        self.source = f"modelbus/worker/{deps.worker_id}"

    def register(self, broker: KafkaBroker) -> None:
        @broker.subscriber(
            self.settings.topic("deploy.commands"),
            group_id=self.settings.group("rl-deploy"),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.background_fetch_max_wait_ms,
            ack_policy=AckPolicy.ACK,
            max_poll_interval_ms=3_600_000,
            decoder=self.deps.raw_decoder,
            title="rl-deploy",
            description="Deploys RL agents: Kubernetes with MODELBUS_KUBECONFIG, else the local serving workers.",
        )
        async def on_deploy_command(body: bytes) -> None:
            env = Envelope.from_bytes(body)
            if env.type == rl.DEPLOY_REQUESTED:
                await self.deploy(env)
            elif env.type == rl.UNDEPLOY_REQUESTED:
                await self.undeploy(env)

    async def _publish(self, topic: str, env: Envelope, key: str) -> None:
        await self.deps.publisher.publish(topic, env, key=key)

    async def _ensure_status(
        self, model_id: str, version: int, status: str, previous: str, reason: str, cause: Envelope, **kw: Any
    ) -> bool:
        """Publishes the status change the API claimed for ``version`` if the registry does not show it yet
        (the API publishes it too; the projection applies it once). False if the model moved past it."""
        doc = await self.db[mongo.MODELS].find_one({"_id": model_id}, {"status_version": 1})
        current = (doc or {}).get("status_version", 0)
        if current > version:
            return False
        if current < version:
            env = jobs.status_changed(
                model_id, status, previous, version, source=self.source, actor=None, reason=reason, cause=cause, **kw
            )
            await self._publish("model.events", env, model_id)
        return True

    async def deploy(self, env: Envelope) -> None:
        cmd = env.payload(rl.DeployRequested)
        spec = cmd.deployment
        summary = {"name": spec.name, "namespace": spec.namespace, "replicas": spec.replicas, "target": spec.target}
        if not await self._ensure_status(
            cmd.model_id, cmd.generation, "deploying", cmd.previous_status, "deploy requested", env, deployment=summary
        ):
            log.info("deploy superseded", extra={"model_id": cmd.model_id, "generation": cmd.generation})
            return
        status, error, detail = "deployed", None, {}
        t0 = time.perf_counter()
        try:
            if spec.target == "kubernetes":
                from infra import k8s

                if not self.settings.kubeconfig:
                    raise RuntimeError("the command targets Kubernetes but this worker has no MODELBUS_KUBECONFIG")
                detail = await asyncio.to_thread(
                    k8s.apply_manifests,
                    self.settings.kubeconfig,
                    spec.manifests,
                    timeout_s=self.settings.k8s_rollout_timeout_seconds,
                )
            else:
                detail = await self.preload(cmd.model_id)
        except Exception as exc:  # noqa: BLE001 - a failed deploy is an event
            log.exception("deploy failed", extra={"model_id": cmd.model_id})
            status, error = "failed", f"{exc.__class__.__name__}: {exc}"
        detail["seconds"] = round(time.perf_counter() - t0, 3)
        outcome = rl.DeploymentChanged(
            model_id=cmd.model_id,
            generation=cmd.generation,
            status=status,  # type: ignore[arg-type]
            target=spec.target,
            worker_id=self.deps.worker_id,
            detail=detail,
            error=error,
        )
        out_env = Envelope.wrap(
            rl.DEPLOYED if status == "deployed" else rl.DEPLOY_FAILED,
            cmd.model_id,
            outcome,
            source=self.source,
            sequence=cmd.generation * rl.DEPLOY_STEP + 1,
            cause=env,
        )
        await self._publish("deploy.events", out_env, cmd.model_id)
        new_status = "deployed" if status == "deployed" else cmd.previous_status
        version = cmd.generation + 1
        if await claim_status(self.db, cmd.model_id, version, new_status, self.deps.worker_id):
            reason = "deployed" if status == "deployed" else f"deploy failed: {error}"
            await self._publish(
                "model.events",
                jobs.status_changed(
                    cmd.model_id,
                    new_status,
                    "deploying",
                    version,
                    source=self.source,
                    actor=f"worker/{self.deps.worker_id}",
                    reason=reason,
                    deployment=summary | {"status": status},
                    cause=out_env,
                ),
                cmd.model_id,
            )
        else:
            log.warning("model status moved during deploy", extra={"model_id": cmd.model_id, "version": version})
            return
        if status == "deployed":
            await self._archive_replaced(cmd.model_id, spec.name, spec.namespace, out_env)
        log.info("deploy finished", extra={"model_id": cmd.model_id, "status": status, "target": spec.target})

    async def preload(self, model_id: str) -> dict[str, Any]:
        """Local deployment: load the agent here (sha256 checked) and answer one observation."""
        import numpy as np

        doc = await self.serving.model_doc(model_id, fresh=True)
        if doc is None:
            raise RuntimeError(f"model {model_id} is not in the registry")
        loaded = await self.serving.load(model_id, doc)
        probe = np.zeros(loaded.agent.observation_shape, dtype=np.float32)
        action = int(loaded.agent.act(probe))
        return {
            "loaded_by": self.deps.worker_id,
            "artifact_sha256": loaded.sha256,
            "probe_action": action,
            "serving": "every local serving worker answers rl.act for this model (loaded on first use)",
        }

    async def _archive_replaced(self, model_id: str, name: str, namespace: str, cause: Envelope) -> None:
        """Archive older deployed models that this deployment replaced (same deployment name and namespace)."""
        query = {
            "domain": "rl",
            "status": "deployed",
            "_id": {"$ne": model_id},
            "deployment.name": name,
            "deployment.namespace": namespace,
        }
        async for other in self.db[mongo.MODELS].find(query, {"status_version": 1, "deployment": 1}):
            version = int(other["status_version"]) + 1
            if not await claim_status(self.db, other["_id"], version, "archived", self.deps.worker_id):
                continue
            reason = f"replaced by {model_id}"
            undeployed = Envelope.wrap(
                rl.UNDEPLOYED,
                other["_id"],
                rl.DeploymentChanged(
                    model_id=other["_id"],
                    generation=version,
                    status="undeployed",
                    target=(other.get("deployment") or {}).get("target", "local"),
                    worker_id=self.deps.worker_id,
                    detail={"reason": reason},
                ),
                source=self.source,
                sequence=version * rl.DEPLOY_STEP + 1,
                cause=cause,
            )
            await self._publish("deploy.events", undeployed, other["_id"])
            await self._publish(
                "model.events",
                jobs.status_changed(
                    other["_id"],
                    "archived",
                    "deployed",
                    version,
                    source=self.source,
                    actor=f"worker/{self.deps.worker_id}",
                    reason=reason,
                    cause=undeployed,
                ),
                other["_id"],
            )
            self.serving.drop(other["_id"])
            log.info("model archived", extra={"model_id": other["_id"], "replaced_by": model_id})

    async def undeploy(self, env: Envelope) -> None:
        cmd = env.payload(rl.UndeployRequested)
        if not await self._ensure_status(
            cmd.model_id, cmd.generation, "archived", cmd.previous_status, cmd.reason, env
        ):
            return
        deployment = await self.db[mongo.RL_DEPLOYMENTS].find_one({"_id": cmd.model_id}) or {}
        target = deployment.get("target", "local")
        error = None
        if target == "kubernetes" and self.settings.kubeconfig:
            from infra import k8s

            other = await self.db[mongo.MODELS].count_documents(
                {
                    "_id": {"$ne": cmd.model_id},
                    "status": {"$in": ["deploying", "deployed"]},
                    "deployment.name": deployment.get("name"),
                    "deployment.namespace": deployment.get("namespace"),
                }
            )
            if not other:  # a newer model may already run under the same name
                try:
                    await asyncio.to_thread(
                        k8s.delete_manifests, self.settings.kubeconfig, deployment["name"], deployment["namespace"]
                    )
                except Exception as exc:  # noqa: BLE001
                    log.exception("kubernetes delete failed", extra={"model_id": cmd.model_id})
                    error = f"{exc.__class__.__name__}: {exc}"
        self.serving.drop(cmd.model_id)
        out = rl.DeploymentChanged(
            model_id=cmd.model_id,
            generation=cmd.generation,
            status="undeployed",
            target=target,
            worker_id=self.deps.worker_id,
            detail={"reason": cmd.reason},
            error=error,
        )
        await self._publish(
            "deploy.events",
            Envelope.wrap(
                rl.UNDEPLOYED,
                cmd.model_id,
                out,
                source=self.source,
                sequence=cmd.generation * rl.DEPLOY_STEP + 1,
                cause=env,
            ),
            cmd.model_id,
        )


# -- worker samples ---------------------------------------------------------------------------------------------


class WorkerSampler:
    """Writes this worker's and its machine's CPU/memory, and the agents it holds, to ``worker_samples``."""

    def __init__(self, deps: Deps, serving: RLServing) -> None:
        self.deps = deps
        self.serving = serving
        self.interval = deps.settings.sample_interval_seconds
        self.process = psutil.Process()
        self.host = socket.gethostname()
        self.cpus = psutil.cpu_count() or 1
        self._sampler = Periodic(  # a missed sample is not worth stopping the worker
            "worker-sampler", self._write, self.interval, log=log, first_delay=min(1.0, self.interval)
        )

    def sample(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        rss = self.process.memory_info().rss
        return {
            "worker_id": self.deps.worker_id,
            "host": self.host,
            "pid": os.getpid(),
            "time": utcnow(),
            "cpu": round(self.process.cpu_percent(None) / 100.0 / self.cpus, 4),
            "memory": round(rss / memory.total, 4),
            "rss_bytes": rss,
            "system_cpu": round(psutil.cpu_percent(None) / 100.0, 4),
            "system_memory": round(memory.percent / 100.0, 4),
            "models": sorted(self.serving.agents),
        }

    async def _write(self) -> None:
        await self.deps.db[mongo.WORKER_SAMPLES].insert_one(self.sample())

    def start(self) -> None:
        if not self._sampler.running:
            self.process.cpu_percent(None)  # the first reading of a counter is meaningless
            psutil.cpu_percent(None)
        self._sampler.start()

    async def stop(self) -> None:
        await self._sampler.stop()


class RLWorker:
    """Everything RL in a serving worker: the ``rl.act`` handler, the deploy consumer and the sampler."""

    def __init__(self, deps: Deps, broker: KafkaBroker, serving: ServingService) -> None:
        self.deps = deps
        self.serving = RLServing(deps, serving)
        self.deployer = RLDeployer(deps, self.serving)
        self.deployer.register(broker)
        self.sampler = WorkerSampler(deps, self.serving)

    async def start(self) -> None:
        self.sampler.start()
        model_id = self.deps.settings.rl_model_id
        if model_id:  # an agent pod (Kubernetes): load the model it was deployed for before the first request
            with contextlib.suppress(Exception):
                await self.deployer.preload(model_id)

    async def stop(self) -> None:
        await self.sampler.stop()
        await self.serving.stop()


def register(broker: KafkaBroker, deps: Deps, serving: ServingService | None) -> RLWorker:
    """Adds the RL handler, deploy consumer and sampler to a serving worker (call ``start``/``stop``)."""
    assert serving is not None, "the RL handlers run in the serving role"
    return RLWorker(deps, broker, serving)
