"""Health: ``GET /api/v1/health`` (seed 004's shape) and ``GET /api/monitoring/health``
(seed 003's shape). Both measure the broker and the database for real on every call."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from litestar import Controller, Request, Response, get
from pymongo.asynchronous.database import AsyncDatabase

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
        database, kafka = await asyncio.gather(check_database(db), check_broker(publisher))
        state = request.app.state
        components = {
            "api": "healthy",
            "database": database["status"],
            "kafka": kafka["status"],
            "kubernetes": "healthy" if os.environ.get("MODELBUS_KUBECONFIG") else "not_configured",
            "wandb": state.get("wandb_status", "not_configured"),
        }
        healthy = database["status"] == kafka["status"] == "healthy"
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "components": components,
            "version": VERSION,
            "uptime": _uptime(state.started_monotonic),
            "details": {"database": database, "kafka": kafka},
        }
        return Response(body, status_code=200 if healthy else 503)

    @get("/api/monitoring/health", summary="System status (lotto API family)")
    async def monitoring_health(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> Response[dict[str, Any]]:
        database, broker = await asyncio.gather(check_database(db), check_broker(publisher))
        healthy = database["status"] == broker["status"] == "healthy"
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "timestamp": iso(utcnow()),
            "components": {"database": database, "broker": broker},
        }
        return Response(body, status_code=200 if healthy else 503)
