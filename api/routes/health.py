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
from pymongo.asynchronous.database import AsyncDatabase

from api.monitoring import recent_performance, worker_components
from producers.publisher import EventPublisher
from schemas.common import iso, utcnow

VERSION = "1.0.0"


async def check_database(db: AsyncDatabase) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(db.command("ping"), timeout=2.0)
        status = "healthy"
        error = None
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        status, error = "unhealthy", exc.__class__.__name__
    return {
        "status": status,
        "response_time_ms": round((time.perf_counter() - t0) * 1000, 2),
        "last_check": iso(utcnow()),
        **({"error": error} if error else {}),
    }


async def check_broker(publisher: EventPublisher) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        await publisher.connect()
        ok = await asyncio.wait_for(publisher.broker.ping(timeout=2.0), timeout=2.5)
        status, error = ("healthy", None) if ok else ("unhealthy", "no answer")
    except Exception as exc:  # noqa: BLE001
        status, error = "unhealthy", exc.__class__.__name__
    return {
        "status": status,
        "response_time_ms": round((time.perf_counter() - t0) * 1000, 2),
        "last_check": iso(utcnow()),
        **({"error": error} if error else {}),
    }


async def check_kubernetes(kubeconfig: str | None) -> dict[str, Any]:
    """not_configured without MODELBUS_KUBECONFIG; otherwise whether the cluster's API server answers."""
    if not kubeconfig:
        return {"status": "not_configured"}
    from infra.k8s import check_cluster

    try:
        return await asyncio.wait_for(asyncio.to_thread(check_cluster, kubeconfig), timeout=5.0)
    except TimeoutError:
        return {"status": "unhealthy", "error": "TimeoutError"}


def wandb_state() -> dict[str, Any]:
    """W&B is optional: not_installed, not_configured (installed, no WANDB_API_KEY: runs are logged offline,
    ``wandb sync`` uploads them) or configured (key set; W&B's servers are not called by a health check)."""
    if importlib.util.find_spec("wandb") is None:
        return {"status": "not_installed"}
    configured = bool(os.environ.get("WANDB_API_KEY"))
    return {
        "status": "configured" if configured else "not_configured",
        "installed": importlib.metadata.version("wandb"),
        "mode": "online" if configured else "offline",
    }


def _uptime(started: float) -> str:
    seconds = int(time.monotonic() - started)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"


class HealthController(Controller):
    tags = ["health"]

    @get("/api/v1/health", summary="System status (RL API family)")
    async def v1_health(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> Response[dict[str, Any]]:
        state = request.app.state
        database, kafka, kubernetes = await asyncio.gather(
            check_database(db), check_broker(publisher), check_kubernetes(state.settings.kubeconfig)
        )
        wandb = wandb_state()
        components = {
            "api": "healthy",
            "database": database["status"],
            "kafka": kafka["status"],
            "kubernetes": kubernetes["status"],
            "wandb": wandb["status"],
        }
        healthy = database["status"] == kafka["status"] == "healthy"
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "components": components,
            "version": VERSION,
            "uptime": _uptime(state.started_monotonic),
            "details": {"database": database, "kafka": kafka, "kubernetes": kubernetes, "wandb": wandb},
        }
        return Response(body, status_code=200 if healthy else 503)

    @get("/api/monitoring/health", summary="System status (lotto API family)")
    async def monitoring_health(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> Response[dict[str, Any]]:
        state = request.app.state
        database, broker = await asyncio.gather(check_database(db), check_broker(publisher))
        # then the workers and the request log, so their queries do not slow the database ping measured above
        workers, performance = await asyncio.gather(worker_components(state, db), recent_performance(state, db))
        healthy = database["status"] == broker["status"] == "healthy"
        degraded = healthy and workers["ml_models"]["status"] != "healthy"
        body = {
            "status": "degraded" if degraded else "healthy" if healthy else "unhealthy",
            "timestamp": iso(utcnow()),
            "components": {"database": database, "broker": broker, **workers},
            "performance": performance,
        }
        return Response(body, status_code=200 if healthy else 503)
