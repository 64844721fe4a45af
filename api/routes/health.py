"""Health: ``GET /api/v1/health`` (seed 004's shape) and ``GET /api/monitoring/health``
(seed 003's shape). Both measure the broker and the database for real on every call."""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import os
import time
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.monitoring import recent_performance, worker_components
from producers.publisher import EventPublisher
from schemas.common import (
    ComponentHealth,
    Health,
    HealthComponents,
    HealthDetails,
    KubernetesHealth,
    WandbHealth,
    iso,
    utcnow,
)
from schemas.lotto import MonitoringHealth, MonitoringHealthComponents

VERSION = "1.0.0"


async def check_database(db: AsyncDatabase) -> ComponentHealth:
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(db.command("ping"), timeout=2.0)
        status = "healthy"
        error = None
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        status, error = "unhealthy", exc.__class__.__name__
    return ComponentHealth(
        status=status,
        response_time_ms=round((time.perf_counter() - t0) * 1000, 2),
        last_check=iso(utcnow()),
        error=error,
    )


async def check_broker(publisher: EventPublisher) -> ComponentHealth:
    t0 = time.perf_counter()
    try:
        await publisher.connect()
        ok = await asyncio.wait_for(publisher.broker.ping(timeout=2.0), timeout=2.5)
        status, error = ("healthy", None) if ok else ("unhealthy", "no answer")
    except Exception as exc:  # noqa: BLE001
        status, error = "unhealthy", exc.__class__.__name__
    return ComponentHealth(
        status=status,
        response_time_ms=round((time.perf_counter() - t0) * 1000, 2),
        last_check=iso(utcnow()),
        error=error,
    )


async def check_kubernetes(kubeconfig: str | None) -> KubernetesHealth:
    """not_configured without MODELBUS_KUBECONFIG; otherwise whether the cluster's API server answers."""
    if not kubeconfig:
        return KubernetesHealth(status="not_configured")
    from infra.k8s import check_cluster

    try:
        return KubernetesHealth(**await asyncio.wait_for(asyncio.to_thread(check_cluster, kubeconfig), timeout=5.0))
    except TimeoutError:
        return KubernetesHealth(status="unhealthy", error="TimeoutError")


def wandb_state() -> WandbHealth:
    """W&B is optional: not_installed, not_configured (installed, no WANDB_API_KEY: runs are logged offline,
    ``wandb sync`` uploads them) or configured (key set; W&B's servers are not called by a health check)."""
    if importlib.util.find_spec("wandb") is None:
        return WandbHealth(status="not_installed")
    configured = bool(os.environ.get("WANDB_API_KEY"))
    return WandbHealth(
        status="configured" if configured else "not_configured",
        installed=importlib.metadata.version("wandb"),
        mode="online" if configured else "offline",
    )


def _uptime(started: float) -> str:
    seconds = int(time.monotonic() - started)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"


class HealthController(Controller):
    tags = ["health"]

    @get(
        "/api/v1/health",
        summary="System status (RL API family)",
        responses=error_responses(guarded=False)
        | {503: ResponseSpec(Health, description="The database or Kafka does not answer (status unhealthy)")},
    )
    async def v1_health(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> Response[Health]:
        state = request.app.state
        database, kafka, kubernetes = await asyncio.gather(
            check_database(db), check_broker(publisher), check_kubernetes(state.settings.kubeconfig)
        )
        wandb = wandb_state()
        components = HealthComponents(
            api="healthy",
            database=database.status,
            kafka=kafka.status,
            kubernetes=kubernetes.status,
            wandb=wandb.status,
        )
        healthy = database.status == kafka.status == "healthy"
        body = Health(
            status="healthy" if healthy else "unhealthy",
            components=components,
            version=VERSION,
            uptime=_uptime(state.started_monotonic),
            details=HealthDetails(database=database, kafka=kafka, kubernetes=kubernetes, wandb=wandb),
        )
        return Response(body, status_code=200 if healthy else 503)

    @get(
        "/api/monitoring/health",
        summary="System status (lotto API family)",
        responses=error_responses(guarded=False)
        | {503: ResponseSpec(MonitoringHealth, description="The database or the broker does not answer (unhealthy)")},
    )
    async def monitoring_health(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> Response[MonitoringHealth]:
        state = request.app.state
        database, broker = await asyncio.gather(check_database(db), check_broker(publisher))
        # then the workers and the request log, so their queries do not slow the database ping measured above
        workers, performance = await asyncio.gather(worker_components(state, db), recent_performance(state, db))
        ml_models, cache = workers
        healthy = database.status == broker.status == "healthy"
        degraded = healthy and ml_models.status != "healthy"
        body = MonitoringHealth(
            status="degraded" if degraded else "healthy" if healthy else "unhealthy",
            timestamp=iso(utcnow()),
            components=MonitoringHealthComponents(database=database, broker=broker, ml_models=ml_models, cache=cache),
            performance=performance,
        )
        return Response(body, status_code=200 if healthy else 503)
