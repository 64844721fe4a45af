"""``/api/v1``: RL edge-placement agents (seed 004): training tasks, models, deployment, serving and metrics.

A training task is a training job of domain ``rl`` (the shared ``jobs`` projection); its per-episode series
come from the ``rl_episodes`` projection (one ``rl.episodes`` event per episode). Task statuses of this API:

==============  ===========================================================================
``created``     accepted, waiting for a training worker (job status ``started``, first attempt)
``pending``     waiting for a worker again after a worker was lost (``started``, attempt > 1)
``running``     a worker is training it
``cancelling``  cancel requested, the worker has not stopped yet
``completed``   trained; the model is registered (``model_id``)
``failed``      failed after its attempts (``error``)
``cancelled``   stopped on request, at the end of the episode that was running
==============  ===========================================================================

Units: ``episode_latencies`` and every ``latency`` served here are **seconds** (the seed's examples);
``rl.episodes`` events carry milliseconds (``latency_ms``). Throughput is requests per second over each
interval; CPU and memory are fractions (0..1) of the machine's CPUs and memory.

Deployment: the model moves ``trained`` → ``deploying`` → ``deployed`` (→ ``archived`` when undeployed or
replaced by a newer model under the same deployment name). Each change is a ``ModelStatusChanged`` event,
compare-and-set on ``status_version`` (a conflicting request answers 409).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.jobs import cancel as cancel_job
from api.jobs import estimate_minutes, find_job, submit
from api.registry import find_model, iso_or_none, model_fields
from api.security import api_key_guard, principal_of
from api.workers import call_worker
from infra import k8s, mongo
from infra.claims import claim_status, release_status
from infra.projections import apply_events
from infra.settings import Settings
from producers.publisher import EventPublisher
from producers.rpc import RpcClient
from schemas import jobs, rl
from schemas.common import iso, utcnow
from schemas.envelope import Envelope
from schemas.errors import ApiError, validation_error

# Seconds per episode when no finished task of the type exists (measured on this class of machine).
DEFAULT_SECONDS_PER_EPISODE = {"q_learning": 0.006, "dqn": 0.03, "ppo": 0.03}
CANCEL_WAIT_SECONDS = 10.0
MAX_INTERVALS = 10_000
INTERVALS = {"1m": ("minute", 1, 60), "5m": ("minute", 5, 300), "1h": ("hour", 1, 3600)}
ModelStatusFilter = Literal["trained", "deploying", "deployed", "archived"]
Interval = Literal["1m", "5m", "1h"]


def _settings(request: Request[Any, Any, Any]) -> Settings:
    return request.app.state.settings


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# -- training tasks -------------------------------------------------------------------------------------------


def task_status(doc: dict[str, Any]) -> str:
    status = doc["status"]
    if status in jobs.TERMINAL:
        return status
    if doc.get("cancel_requested"):
        return "cancelling"
    if status == "started":
        return "created" if doc.get("attempts", 1) <= 1 else "pending"
    return status


async def task_body(db: AsyncDatabase, doc: dict[str, Any]) -> rl.RLTrainingTask:
    spec = doc.get("spec", {})
    total = int(spec.get("total_episodes") or 0)
    rewards: list[float] = []
    steps: list[int] = []
    latencies: list[float] = []
    last_time = None
    cursor = (
        db[mongo.RL_EPISODES]
        .find(
            {"job_id": doc["job_id"], "attempt": doc.get("attempts", 1)},
            {"_id": 0, "reward": 1, "steps": 1, "latency_ms": 1, "time": 1},
        )
        .sort("episode", 1)
    )
    async for ep in cursor:
        rewards.append(round(ep["reward"], 4))
        steps.append(ep["steps"])
        latencies.append(round(ep["latency_ms"] / 1000.0, 6))
        last_time = ep["time"]
    status = task_status(doc)
    current = len(rewards)
    progress = 1.0 if status == "completed" else (round(current / total, 4) if total else 0.0)
    updated = doc.get("updated_at")
    if last_time is not None and (updated is None or last_time > updated):
        updated = last_time
    evaluation = None
    if status == "completed" and doc.get("metrics"):
        verdict = (doc.get("result") or {}).get("verdict")
        evaluation = doc["metrics"] | ({"verdict": verdict} if verdict else {})
    return rl.RLTrainingTask(
        task_id=doc["job_id"],
        name=spec.get("name"),
        model_type=doc["model_type"],
        status=status,
        progress=progress,
        current_episode=current,
        total_episodes=total,
        metrics=rl.EpisodeMetrics(episode_rewards=rewards, episode_steps=steps, episode_latencies=latencies),
        model_id=doc.get("model_id"),
        created_at=iso_or_none(doc.get("submitted_at")),
        updated_at=iso_or_none(updated),
        evaluation=evaluation,
        error=doc.get("error") if status in ("failed", "cancelled") and doc.get("error") else None,
    )


# -- models -----------------------------------------------------------------------------------------------------

SUMMARY_METRICS = (
    "mean_reward",
    "normalised_score",
    "normalised_score_ci95_low",
    "normalised_score_ci95_high",
    "latency",
    "latency_ms",
    "cost",
    "overload",
    "random_mean_reward",
    "greedy_mean_reward",
    "vs_greedy_win_rate",
    "vs_greedy_mean_difference",
    "vs_greedy_mean_difference_ci95_low",
    "vs_greedy_mean_difference_ci95_high",
    "beats_greedy",
    "evaluation_days",
)
"""On the held-out days (``ml.rl.evaluation``): rewards per day, the score 0 = random, 1 = greedy."""


def model_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of :class:`schemas.rl.RLModelSummary` (``RLModelDetail`` extends them)."""
    fields = model_fields(doc)
    return {
        "model_id": fields["model_id"],
        "name": fields["model_name"],
        "type": fields["model_type"],
        "status": fields["status"],
        "version": fields["version"],
        "metrics": {k: fields["metrics"][k] for k in SUMMARY_METRICS if k in (fields["metrics"] or {})},
        "task_id": (doc.get("lineage") or {}).get("job_id"),
        "created_at": fields["trained_at"],
        "deployed_at": fields["deployed_at"],
    }


async def rl_model(db: AsyncDatabase, model_id: str) -> dict[str, Any]:
    return await find_model(db, model_id, "rl", what="RL model")


def deployment_view(dep: dict[str, Any]) -> rl.RLDeployment:
    return rl.RLDeployment(
        name=dep["name"],
        namespace=dep["namespace"],
        replicas=dep["replicas"],
        resources=rl.DeploymentResources.model_validate(dep["resources"]),
        strategy=dep["strategy"],
        target=dep["target"],
        status=dep["status"],
        requested_at=iso_or_none(dep.get("requested_at")),
        deployed_at=iso_or_none(dep.get("deployed_at")),
        error=dep.get("error"),
        detail=dep.get("detail") or {},
    )


async def claim(db: AsyncDatabase, model_id: str, version: int, status: str, by: str) -> None:
    """Compare-and-set: the change of ``model_id`` to ``status_version`` ``version`` is ours, or 409."""
    if not await claim_status(db, model_id, version, status, by):
        raise ApiError(
            409,
            "STATUS_CONFLICT",
            f"model {model_id} was changed by another request; read it and retry",
            field="model_id",
        )


async def publish_claimed(
    db: AsyncDatabase, publisher: EventPublisher, command: Envelope, model_id: str, version: int
) -> None:
    """Publishes a deploy command whose status change is claimed; if Kafka refuses it, nothing was
    accepted, so the claim is given back."""
    try:
        await publisher.publish("deploy.commands", command, key=model_id)
    except Exception:
        await release_status(db, model_id, version)
        raise


# -- metrics ----------------------------------------------------------------------------------------------------


_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)([Zz]|[+\- ][0-9]{2}:[0-9]{2})"
)


def parse_time(value: str | None, field: str) -> datetime | None:
    """An RFC 3339 time with its zone (``format: date-time``), as the schema documents it; absent: None. Empty
    text, a time without a zone or any other text is 422 VALIDATION_ERROR. A ``+`` offset left unescaped in a
    query string arrives as a space and is read as ``+``."""
    if value is None:
        return None
    match = _RFC3339.fullmatch(value)
    parsed = None
    if match is not None:
        day, clock, zone = match.groups()
        zone = "+00:00" if zone in ("Z", "z") else zone.replace(" ", "+")
        try:
            parsed = datetime.fromisoformat(f"{day}T{clock}{zone}")
        except ValueError:
            parsed = None
    if parsed is None:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            f"{field} must be an RFC 3339 time with its zone, e.g. 2025-01-15T10:00:00Z",
            field=field,
            details=[{"field": field, "message": "an RFC 3339 date-time with a zone", "value": value}],
        )
    return parsed.astimezone(UTC)


def time_window(start_time: str | None, end_time: str | None, interval: str) -> tuple[datetime, datetime]:
    seconds = INTERVALS[interval][2]
    end = parse_time(end_time, "end_time") or utcnow()
    try:
        start = parse_time(start_time, "start_time") or end - timedelta(
            seconds=seconds * (24 if interval == "1h" else 60)
        )
    except OverflowError as exc:
        raise ApiError(422, "VALIDATION_ERROR", "end_time is too early for a default window", field="end_time") from exc
    if start >= end:
        raise ApiError(422, "VALIDATION_ERROR", "start_time must be before end_time", field="start_time")
    if (end - start).total_seconds() / seconds > MAX_INTERVALS:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            f"the window holds more than {MAX_INTERVALS} intervals of {interval}; use a larger interval",
            field="interval",
        )
    return start, end


def bucket(interval: str) -> dict[str, Any]:
    unit, size, _ = INTERVALS[interval]
    return {"$dateTrunc": {"date": "$time", "unit": unit, "binSize": size}}


def series(rows: list[dict[str, Any]], key: str, digits: int = 6) -> rl.Series:
    return rl.Series(
        values=[round(float(r[key]), digits) if r.get(key) is not None else None for r in rows],
        timestamps=[iso(r["_id"]) for r in rows],
    )


async def sample_series(db: AsyncDatabase, match: dict[str, Any], interval: str, fields: dict[str, str]) -> list[Any]:
    pipeline = [
        {"$match": match},
        {"$group": {"_id": bucket(interval), **{name: {"$avg": f"${src}"} for name, src in fields.items()}}},
        {"$sort": {"_id": 1}},
    ]
    return [row async for row in await db[mongo.WORKER_SAMPLES].aggregate(pipeline)]


async def live_workers(db: AsyncDatabase, settings: Settings) -> list[dict[str, Any]]:
    since = utcnow() - timedelta(seconds=max(30.0, 3 * settings.sample_interval_seconds))
    pipeline = [
        {"$match": {"time": {"$gte": since}}},
        {"$sort": {"time": 1}},
        {
            "$group": {
                "_id": "$worker_id",
                "host": {"$last": "$host"},
                "system_cpu": {"$last": "$system_cpu"},
                "system_memory": {"$last": "$system_memory"},
                "models": {"$last": "$models"},
            }
        },
    ]
    return [row async for row in await db[mongo.WORKER_SAMPLES].aggregate(pipeline)]


# -- the controller ---------------------------------------------------------------------------------------------


ISO_TIME: dict[str, Any] = {"format": "date-time", "examples": ["2025-01-15T10:00:00Z"]}
"""``schema_extra`` of the RFC 3339 time parameters (``parse_time``)"""

WINDOW_RULES = (
    " start_time and end_time are RFC 3339 times with a zone (e.g. 2025-01-15T10:00:00Z). Rules across the "
    "parameters, which a JSON schema cannot state (422 VALIDATION_ERROR): start_time must be before end_time, "
    f"and the window may hold at most {MAX_INTERVALS:,} intervals of the chosen interval."
)


class RLController(Controller):
    path = "/api/v1"
    guards = [api_key_guard]
    tags = ["rl: edge placement"]

    # training ---------------------------------------------------------------------------------------------
    @post(
        "/training",
        status_code=HTTP_202_ACCEPTED,
        summary="Create a training task (q_learning, dqn, ppo)",
        responses=error_responses(400, 422),
    )
    async def create_task(
        self, request: Request[Any, Any, Any], data: rl.TrainingRequest, db: AsyncDatabase, publisher: EventPublisher
    ) -> rl.RLTaskCreated:
        try:
            params = data.params()
        except ValidationError as exc:
            raise validation_error(exc, "parameters") from exc
        estimate = await estimate_minutes(
            db,
            "rl",
            data.model_type,
            data.total_episodes,
            unit_field="spec.total_episodes",
            default_minutes_per_unit=DEFAULT_SECONDS_PER_EPISODE[data.model_type] / 60,
        )
        command = await submit(
            request,
            publisher,
            db,
            domain="rl",
            model_type=data.model_type,
            estimated_minutes=estimate,
            id_prefix="task",
            spec=rl.RLJobSpec(
                name=data.name,
                parameters=params.model_dump(mode="json"),
                total_episodes=data.total_episodes,
                wandb_project=data.wandb_project,
                wandb_run_name=data.wandb_run_name,
            ),
        )
        return rl.RLTaskCreated(
            task_id=command.job_id,
            status="created",
            created_at=iso(command.submitted_at),
            estimated_duration_minutes=command.estimated_duration_minutes,
        )

    @get(
        "/training/{task_id:str}",
        summary="Training task status with per-episode metrics",
        description="progress is a fraction (0..1); episode_latencies are seconds; model_id once completed.",
        responses=error_responses(404, 422),
    )
    async def get_task(self, task_id: str, db: AsyncDatabase) -> rl.RLTrainingTask:
        doc = await find_job(db, task_id, "rl", code="TASK_NOT_FOUND", field="task_id")
        return await task_body(db, doc)

    @post(
        "/training/{task_id:str}/cancel",
        status_code=200,
        summary="Cancel a training task",
        description="Waits up to 10 s for the worker to stop (200, cancelled); 202 with status cancelling if it "
        "has not stopped by then; 409 if the task had already finished.",
        responses={202: ResponseSpec(rl.RLTaskCancel, description="the worker has not stopped yet (cancelling)")}
        | error_responses(404, 409),
    )
    async def cancel_task(
        self, request: Request[Any, Any, Any], task_id: str, db: AsyncDatabase, publisher: EventPublisher
    ) -> Response[rl.RLTaskCancel]:
        doc = await find_job(db, task_id, "rl", code="TASK_NOT_FOUND", field="task_id")
        if doc["status"] == "cancelled":
            body = rl.RLTaskCancel(task_id=task_id, status="cancelled", updated_at=iso_or_none(doc.get("updated_at")))
            return Response(body, status_code=200)
        env = await cancel_job(request, publisher, db, doc, code="TASK_FINISHED", field="task_id", what="task")
        deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            doc = await db[mongo.JOBS].find_one({"_id": task_id}) or doc
            if doc["status"] in jobs.TERMINAL:
                break
            await asyncio.sleep(0.1)
        if doc["status"] == "cancelled":
            return Response(
                rl.RLTaskCancel(task_id=task_id, status="cancelled", updated_at=iso_or_none(doc.get("updated_at"))),
                status_code=200,
            )
        if doc["status"] in jobs.TERMINAL:
            raise ApiError(
                409, "TASK_FINISHED", f"task {task_id} {doc['status']} before the cancel took effect", field="task_id"
            )
        return Response(
            rl.RLTaskCancel(task_id=task_id, status="cancelling", updated_at=iso(env.time)),
            status_code=HTTP_202_ACCEPTED,
        )

    # models ----------------------------------------------------------------------------------------------------
    @get(
        "/models",
        summary="RL models, newest first",
        description="metrics.latency is seconds.",
        responses=error_responses(422),
    )
    async def list_models(
        self,
        db: AsyncDatabase,
        page: Annotated[int, Parameter(ge=1, le=100_000)] = 1,
        per_page: Annotated[int, Parameter(ge=1, le=100)] = 10,
        status: ModelStatusFilter | None = None,
    ) -> rl.RLModelList:
        query: dict[str, Any] = {"domain": "rl"}
        if status:
            query["status"] = status
        total = await db[mongo.MODELS].count_documents(query)
        cursor = db[mongo.MODELS].find(query).sort([("trained_at", -1), ("_id", -1)]).skip((page - 1) * per_page)
        models = [rl.RLModelSummary(**model_summary(doc)) async for doc in cursor.limit(per_page)]
        return rl.RLModelList(models=models, total=total, page=page, per_page=per_page)

    @get(
        "/models/{model_id:str}",
        summary="One RL model with its lineage, history and deployment",
        responses=error_responses(404, 422),
    )
    async def get_model(self, model_id: str, db: AsyncDatabase) -> rl.RLModelDetail:
        doc = await rl_model(db, model_id)
        dep = await db[mongo.RL_DEPLOYMENTS].find_one({"_id": model_id})
        return rl.RLModelDetail(
            **{
                **model_summary(doc),
                "metrics": doc.get("metrics") or {},
                "lineage": doc.get("lineage") or {},
                "artifact_sha256": doc.get("artifact_sha256"),
                "status_version": doc.get("status_version"),
                "history": [{**h, "at": iso_or_none(h.get("at"))} for h in doc.get("history", [])],
                "deployment": deployment_view(dep) if dep else None,
            }
        )

    @post(
        "/models/{model_id:str}/deploy",
        status_code=HTTP_202_ACCEPTED,
        summary="Deploy a model (Kubernetes with MODELBUS_KUBECONFIG, else the local serving workers)",
        responses=error_responses(400, 404, 409, 422),
    )
    async def deploy(
        self,
        request: Request[Any, Any, Any],
        model_id: str,
        data: rl.DeployRequest,
        db: AsyncDatabase,
        publisher: EventPublisher,
    ) -> rl.RLDeployAccepted:
        settings = _settings(request)
        doc = await rl_model(db, model_id)
        if doc["status"] == "deploying":
            raise ApiError(409, "DEPLOYMENT_IN_PROGRESS", f"model {model_id} is being deployed", field="model_id")
        namespace = data.namespace or settings.k8s_namespace
        manifests = k8s.build_manifests(
            model_id=model_id,
            model_type=doc["model_type"],
            model_name=doc["model_name"],
            namespace=namespace,
            replicas=data.replicas,
            cpu=data.resources.cpu,
            memory=data.resources.memory,
            strategy=data.strategy,
            image=settings.k8s_image,
            artifact_sha256=doc["artifact_sha256"],
            env={"MODELBUS_MONGODB_DB": settings.mongodb_db, "MODELBUS_TOPIC_PREFIX": settings.topic_prefix},
        )
        try:
            await asyncio.to_thread(k8s.validate_manifests, manifests)
        except k8s.ManifestError as exc:
            raise ApiError(422, "INVALID_MANIFEST", str(exc), field="model_id") from exc
        principal = principal_of(request)
        actor = principal.key_id if principal else None
        generation = int(doc.get("status_version", 1)) + 1
        await claim(db, model_id, generation, "deploying", actor or "api")
        target = "kubernetes" if settings.kubeconfig else "local"
        spec = rl.DeploymentSpec(
            name=manifests[0]["metadata"]["name"],
            namespace=namespace,
            replicas=data.replicas,
            resources=data.resources,
            strategy=data.strategy,
            target=target,
            manifests=manifests,
        )
        now = utcnow()
        command = Envelope.wrap(
            rl.DEPLOY_REQUESTED,
            model_id,
            rl.DeployRequested(
                model_id=model_id,
                generation=generation,
                previous_status=doc["status"],
                deployment=spec,
                requested_by=actor,
                requested_at=now,
            ),
            source="modelbus/api",
            sequence=generation * rl.DEPLOY_STEP,
            correlationid=model_id,
        )
        await publish_claimed(db, publisher, command, model_id, generation)
        summary = {"name": spec.name, "namespace": namespace, "replicas": data.replicas, "target": target}
        changed = jobs.status_changed(
            model_id,
            "deploying",
            doc["status"],
            generation,
            source="modelbus/api",
            actor=actor,
            reason="deploy requested",
            deployment=summary,
        )
        changed.causationid = command.id
        # the command is durable; if this publish fails the deploy worker publishes the same change
        await publisher.publish("model.events", changed, key=model_id)
        await apply_events(db, [command, changed])
        return rl.RLDeployAccepted(
            model_id=model_id,
            status="deploying",
            deployment=rl.RLDeploymentRequested(
                name=spec.name,
                namespace=namespace,
                replicas=data.replicas,
                resources=rl.DeploymentResources(**data.resources.model_dump()),
                strategy=data.strategy,
                target=target,
            ),
            created_at=iso(now),
        )

    @post(
        "/models/{model_id:str}/undeploy",
        status_code=HTTP_202_ACCEPTED,
        summary="Undeploy (archive) a model",
        responses=error_responses(404, 409, 422),
    )
    async def undeploy(
        self, request: Request[Any, Any, Any], model_id: str, db: AsyncDatabase, publisher: EventPublisher
    ) -> rl.RLUndeployAccepted:
        doc = await rl_model(db, model_id)
        if doc["status"] != "deployed":
            raise ApiError(409, "MODEL_NOT_DEPLOYED", f"model {model_id} is {doc['status']}", field="model_id")
        principal = principal_of(request)
        actor = principal.key_id if principal else None
        generation = int(doc["status_version"]) + 1
        await claim(db, model_id, generation, "archived", actor or "api")
        command = Envelope.wrap(
            rl.UNDEPLOY_REQUESTED,
            model_id,
            rl.UndeployRequested(
                model_id=model_id, generation=generation, previous_status=doc["status"], requested_by=actor
            ),
            source="modelbus/api",
            sequence=generation * rl.DEPLOY_STEP,
            correlationid=model_id,
        )
        await publish_claimed(db, publisher, command, model_id, generation)
        changed = jobs.status_changed(
            model_id,
            "archived",
            doc["status"],
            generation,
            source="modelbus/api",
            actor=actor,
            reason="undeployed on request",
        )
        changed.causationid = command.id
        await publisher.publish("model.events", changed, key=model_id)
        await apply_events(db, [command, changed])
        return rl.RLUndeployAccepted(model_id=model_id, status="archived", updated_at=iso(changed.time))

    @get(
        "/models/{model_id:str}/manifest",
        summary="Kubernetes manifests of the model's deployment (Deployment and Service)",
        description="JSON: a v1 List; format=yaml: multi-document YAML for kubectl apply -f.",
        responses=error_responses(404, 422),
    )
    async def manifest(
        self, model_id: str, db: AsyncDatabase, format: Literal["json", "yaml"] = "json"
    ) -> Response[rl.RLManifest]:  # format=yaml answers the manifests as text (application/yaml)
        await rl_model(db, model_id)
        dep = await db[mongo.RL_DEPLOYMENTS].find_one({"_id": model_id})
        if dep is None:
            raise ApiError(404, "DEPLOYMENT_NOT_FOUND", f"model {model_id} has not been deployed", field="model_id")
        if format == "yaml":
            import yaml

            return Response(yaml.safe_dump_all(dep["manifests"], sort_keys=False), media_type="application/yaml")
        return Response(
            rl.RLManifest(
                model_id=model_id,
                deployment=deployment_view(dep),
                manifest=rl.ManifestList(apiVersion="v1", kind="List", items=dep["manifests"]),
            )
        )

    @post(
        "/models/{model_id:str}/act",
        status_code=200,
        summary="Placement decision of a deployed agent",
        responses=error_responses(400, 404, 409, 422),
    )
    async def act(self, model_id: str, data: rl.ActRequest, db: AsyncDatabase, rpc: RpcClient) -> rl.RLActDecision:
        doc = await rl_model(db, model_id)
        if doc["status"] != "deployed":
            raise ApiError(
                409, "MODEL_NOT_DEPLOYED", f"model {model_id} is {doc['status']}, not deployed", field="model_id"
            )
        return await call_worker(rpc, rl.RL_ACT, rl.ActBody(**data.model_dump(), model_id=model_id), key=model_id)

    @get(
        "/models/{model_id:str}/metrics",
        summary="Latency, throughput and CPU/memory series of a deployed model",
        description="latency: mean seconds per request; throughput: requests per second; resource_usage: mean "
        "fraction of the machine's CPU and memory used by the workers holding the model. Intervals without "
        "data are left out. Default window: the last 60 intervals (24 for 1h)." + WINDOW_RULES,
        responses=error_responses(404, 422),
    )
    async def model_metrics(
        self,
        model_id: str,
        db: AsyncDatabase,
        start_time: Annotated[str | None, Parameter(schema_extra=ISO_TIME)] = None,
        end_time: Annotated[str | None, Parameter(schema_extra=ISO_TIME)] = None,
        interval: Interval = "1m",
    ) -> rl.RLModelMetrics:
        await rl_model(db, model_id)
        start, end = time_window(start_time, end_time, interval)
        seconds = INTERVALS[interval][2]
        pipeline = [
            {"$match": {"model_id": model_id, "time": {"$gte": start, "$lt": end}}},
            {
                "$group": {
                    "_id": bucket(interval),
                    "latency_ms": {"$avg": "$latency_ms"},
                    "requests": {"$sum": 1},
                    "errors": {"$sum": {"$cond": [{"$gt": ["$error", None]}, 1, 0]}},
                }
            },
            {"$sort": {"_id": 1}},
        ]
        served = [row async for row in await db[mongo.RL_SERVED].aggregate(pipeline)]
        for row in served:
            row["latency"] = row["latency_ms"] / 1000.0
            row["throughput"] = row["requests"] / seconds
        samples = await sample_series(
            db, {"models": model_id, "time": {"$gte": start, "$lt": end}}, interval, {"cpu": "cpu", "memory": "memory"}
        )
        return rl.RLModelMetrics(
            model_id=model_id,
            metrics=rl.ModelMetricSeries(
                latency=series(served, "latency"),
                throughput=series(served, "throughput"),
                resource_usage=rl.ResourceSeries(cpu=series(samples, "cpu", 4), memory=series(samples, "memory", 4)),
            ),
            requests=sum(r["requests"] for r in served),
            errors=sum(r["errors"] for r in served),
            interval=interval,
            start_time=iso(start),
            end_time=iso(end),
        )

    # system -----------------------------------------------------------------------------------------------------
    @get(
        "/metrics",
        summary="System CPU/memory series, workers (pods) and training figures",
        description="system: mean machine CPU and memory (fractions) reported by the workers. kubernetes: the "
        "cluster with MODELBUS_KUBECONFIG, otherwise the live local workers (pods = worker processes). training: "
        "RL tasks." + WINDOW_RULES,
        responses=error_responses(422),
    )
    async def system_metrics(
        self,
        request: Request[Any, Any, Any],
        db: AsyncDatabase,
        start_time: Annotated[str | None, Parameter(schema_extra=ISO_TIME)] = None,
        end_time: Annotated[str | None, Parameter(schema_extra=ISO_TIME)] = None,
        interval: Interval = "1m",
    ) -> rl.RLSystemMetrics:
        settings = _settings(request)
        start, end = time_window(start_time, end_time, interval)
        samples = await sample_series(
            db,
            {"time": {"$gte": start, "$lt": end}},
            interval,
            {"cpu": "system_cpu", "memory": "system_memory"},
        )
        workers = await live_workers(db, settings)
        hosts: dict[str, dict[str, Any]] = {w["host"]: w for w in workers}
        cluster: dict[str, Any] = {
            "node_count": len(hosts),
            "pod_count": len(workers),
            "resource_usage": {
                "cpu": round(sum(h["system_cpu"] for h in hosts.values()) / len(hosts), 4) if hosts else None,
                "memory": round(sum(h["system_memory"] for h in hosts.values()) / len(hosts), 4) if hosts else None,
            },
            "source": "local workers (MODELBUS_KUBECONFIG not set): nodes = hosts, pods = worker processes",
        }
        if settings.kubeconfig:
            try:
                cluster = await asyncio.wait_for(
                    asyncio.to_thread(k8s.cluster_summary, settings.kubeconfig, settings.k8s_namespace), timeout=10
                )
            except Exception as exc:  # noqa: BLE001 - report the local figures and why
                cluster["kubernetes_error"] = exc.__class__.__name__
        active = await db[mongo.JOBS].count_documents({"domain": "rl", "status": {"$in": ["started", "running"]}})
        completed = await db[mongo.JOBS].count_documents({"domain": "rl", "status": "completed"})
        rows = [
            row
            async for row in await db[mongo.JOBS].aggregate(
                [
                    {"$match": {"domain": "rl", "status": "completed", "duration_minutes": {"$ne": None}}},
                    {"$group": {"_id": None, "minutes": {"$avg": "$duration_minutes"}}},
                ]
            )
        ]
        average_s = rows[0]["minutes"] * 60 if rows and rows[0]["minutes"] is not None else None
        return rl.RLSystemMetrics(
            system=rl.SystemSeries(cpu_usage=series(samples, "cpu", 4), memory_usage=series(samples, "memory", 4)),
            kubernetes=rl.ClusterView.model_validate(cluster),
            workers=rl.WorkersView(
                alive=len(workers),
                serving_models=sorted({m for w in workers for m in (w.get("models") or [])}),
            ),
            training=rl.TrainingFigures(
                active_tasks=active,
                completed_tasks=completed,
                average_training_time=_duration(average_s),
                average_training_seconds=round(average_s, 2) if average_s is not None else None,
            ),
            interval=interval,
            start_time=iso(start),
            end_time=iso(end),
        )
