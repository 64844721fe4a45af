"""Monitoring for the whole server (seed 003 §4): a request log, ``GET /api/monitoring/metrics`` and the
worker components of ``GET /api/monitoring/health``. Every figure is measured, none is made up.

* ``record_request`` (called by ``api.middleware.HttpEdge``) records every request the router matched (route
  template, method, status, latency, time) in Prometheus (``api.http_metrics``) and into an in-memory buffer
  that ``RequestLog`` flushes with ``insert_many`` about every second into ``request_log`` (TTL 7 days).
  Unknown routes are answered before any middleware runs and are not recorded.
* ML figures come from ``lotto_generations``, written by the serving workers for every generation,
  ensemble, statistics and backtest request (sets, confidence scores, cache hits, backtest accuracy).
* Resource usage is this API process (``psutil``); with ``modelbus up`` the consumers run in the same
  process, so it includes them.
* The ``ml_models`` and ``cache`` health components are asked of a serving worker over Kafka
  request/reply (``lotto.status``): models loaded in its memory, its result cache and its memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Annotated, Any

import psutil
from litestar import Controller, Litestar, get
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.types import Scope
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from api import http_metrics
from api.errors import error_responses
from api.security import api_key_guard
from infra import mongo
from infra.periodic import Periodic
from producers.rpc import RpcClient
from schemas.common import iso, utcnow
from schemas.errors import ApiError
from schemas.monitoring import (
    MonitoringCacheComponent,
    MonitoringDefinitions,
    MonitoringMetrics,
    MonitoringMlMetrics,
    MonitoringModelsComponent,
    MonitoringPerformance,
    MonitoringPeriod,
    MonitoringRequestMetrics,
    MonitoringResourceUsage,
    MonitoringRouteMetrics,
)

log = logging.getLogger("modelbus.monitoring")

FLUSH_SECONDS = 1.0
MAX_BUFFER = 50_000
MAX_PERIOD = timedelta(seconds=mongo.TELEMETRY_TTL_SECONDS)
STATUS_TIMEOUT_S = 3.0
_PERIOD_RE = re.compile(r"^\s*([0-9]+)\s*(s|sec|m|min|h|d)\s*$", re.IGNORECASE)
PERIOD_PATTERN = r"^\s*[0-9]+\s*([sS]|[sS][eE][cC]|[mM]|[mM][iI][nN]|[hH]|[dD])\s*$"
"""``_PERIOD_RE`` as a JSON-schema pattern (which has no case-insensitive flag)"""
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class RequestLog:
    """Buffered writer of request records: ``insert_many`` every ``interval`` seconds (or on ``flush``)."""

    def __init__(self, db: AsyncDatabase, *, interval: float = FLUSH_SECONDS, max_buffer: int = MAX_BUFFER) -> None:
        self.db = db
        self.interval = interval
        self.max_buffer = max_buffer
        self.buffer: list[dict[str, Any]] = []
        self.dropped = 0
        self.written = 0
        self._lock = asyncio.Lock()
        self._flusher = Periodic("request-log", self.flush, interval, log=log)

    def add(self, record: dict[str, Any]) -> None:
        if len(self.buffer) >= self.max_buffer:  # the database is away: keep the newest, count the rest
            self.buffer.pop(0)
            self.dropped += 1
        self.buffer.append(record)

    async def flush(self) -> int:
        async with self._lock:
            if not self.buffer:
                return 0
            batch, self.buffer = self.buffer, []
            try:
                await self.db[mongo.REQUEST_LOG].insert_many(batch, ordered=False)
            except PyMongoError:
                log.warning("request log flush failed; will retry", extra={"records": len(batch)})
                self.buffer = (batch + self.buffer)[-self.max_buffer :]
                return 0
            self.written += len(batch)
            return len(batch)

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()
        with suppress(Exception):
            await self.flush()


def record_request(scope: Scope, status: int, seconds: float) -> None:
    """One answered request, in Prometheus and the request log (``api.middleware.HttpEdge``)."""
    method, path = scope.get("method", ""), scope.get("path_template") or "<unmatched>"
    http_metrics.record(method, path, status, seconds)
    request_log: RequestLog | None = scope["app"].state.get("request_log")
    if request_log is not None:
        request_log.add(
            {
                "ts": utcnow(),
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            }
        )


@asynccontextmanager
async def monitoring_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Starts the request-log flusher (after the main lifespan opened the database) and flushes it at exit."""
    request_log = RequestLog(app.state.db)
    app.state.request_log = request_log
    app.state.cpu_sample = (time.monotonic(), _cpu_seconds())
    request_log.start()
    try:
        yield
    finally:
        await request_log.stop()


# ---------------------------------------------------------------------------------------------------------------
# figures


def _cpu_seconds() -> float:
    times = psutil.Process(os.getpid()).cpu_times()
    return float(times.user + times.system)


def parse_period(text: str) -> timedelta:
    match = _PERIOD_RE.match(text or "")
    if match is None:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "period: use a number and a unit, e.g. 15m, 1h, 24h, 7d",
            field="period",
            details=[{"field": "period", "message": "e.g. 15m, 1h, 24h, 7d", "value": text}],
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]  # compared before a timedelta can overflow
    if not 60 <= seconds <= MAX_PERIOD.total_seconds():
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "period: between 1m and 7d (requests are kept 7 days)",
            field="period",
            details=[{"field": "period", "message": "between 1m and 7d", "value": text}],
        )
    return timedelta(seconds=seconds)


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


async def request_figures(db: AsyncDatabase, start: datetime, end: datetime) -> MonitoringRequestMetrics:
    """Totals, failures and latency percentiles of the requests recorded in [start, end]."""
    match = {"$match": {"ts": {"$gte": start, "$lte": end}}}
    group = {
        "_id": None,
        "total": {"$sum": 1},
        "client_errors": {"$sum": {"$cond": [{"$and": [{"$gte": ["$status", 400]}, {"$lt": ["$status", 500]}]}, 1, 0]}},
        "server_errors": {"$sum": {"$cond": [{"$gte": ["$status", 500]}, 1, 0]}},
        "avg": {"$avg": "$duration_ms"},
    }
    coll = db[mongo.REQUEST_LOG]
    try:
        rows = await (
            await coll.aggregate(
                [
                    match,
                    {
                        "$group": group
                        | {
                            "pct": {
                                "$percentile": {
                                    "input": "$duration_ms",
                                    "p": [0.5, 0.95, 0.99],
                                    "method": "approximate",
                                }
                            }
                        }
                    },
                ]
            )
        ).to_list(None)
        pct = rows[0]["pct"] if rows else [None, None, None]
    except OperationFailure:  # MongoDB < 7 has no $percentile: sort the latencies here
        rows = await (await coll.aggregate([match, {"$group": group}])).to_list(None)
        latencies = sorted([d["duration_ms"] async for d in coll.find(match["$match"], {"duration_ms": 1, "_id": 0})])
        pct = [_percentile(latencies, q) for q in (0.5, 0.95, 0.99)]
    row = rows[0] if rows else {"total": 0, "client_errors": 0, "server_errors": 0, "avg": None}
    by_route = await (
        await coll.aggregate(
            [
                match,
                {
                    "$group": {
                        "_id": {"method": "$method", "path": "$path"},
                        "requests": {"$sum": 1},
                        "failed": {"$sum": {"$cond": [{"$gte": ["$status", 400]}, 1, 0]}},
                        "avg": {"$avg": "$duration_ms"},
                    }
                },
                {"$sort": {"requests": -1}},
                {"$limit": 15},
            ]
        )
    ).to_list(None)
    total = int(row["total"])
    failed = int(row["client_errors"]) + int(row["server_errors"])
    minutes = max((end - start).total_seconds() / 60.0, 1e-9)

    def ms(value: Any) -> float | None:
        return None if value is None else round(float(value), 2)

    return MonitoringRequestMetrics.model_validate(
        {
            "total_requests": total,
            "successful_requests": total - failed,
            "failed_requests": failed,
            "client_errors": int(row["client_errors"]),
            "server_errors": int(row["server_errors"]),
            "error_rate": round(failed / total, 4) if total else None,
            "requests_per_minute": round(total / minutes, 2),
            "avg_response_time_ms": ms(row["avg"]),
            "50th_percentile_ms": ms(pct[0]),
            "95th_percentile_ms": ms(pct[1]),
            "99th_percentile_ms": ms(pct[2]),
            "by_route": [
                MonitoringRouteMetrics(
                    method=r["_id"]["method"],
                    path=r["_id"]["path"],
                    requests=r["requests"],
                    failed=r["failed"],
                    avg_response_time_ms=ms(r["avg"]),
                )
                for r in by_route
            ],
        }
    )


async def ml_figures(db: AsyncDatabase, start: datetime, end: datetime) -> MonitoringMlMetrics:
    """What the serving workers recorded in [start, end] (``lotto_generations``)."""
    rows = await (
        await db[mongo.LOTTO_GENERATIONS].aggregate(
            [
                {"$match": {"ts": {"$gte": start, "$lte": end}}},
                {
                    "$group": {
                        "_id": "$kind",
                        "requests": {"$sum": 1},
                        "sets": {"$sum": {"$ifNull": ["$sets", 0]}},
                        "confidence_sum": {"$sum": {"$ifNull": ["$confidence_sum", 0]}},
                        "cache_lookups": {"$sum": {"$ifNull": ["$cache_lookup", 0]}},
                        "cache_hits": {"$sum": {"$ifNull": ["$cache_hit", 0]}},
                        "backtests": {"$sum": {"$ifNull": ["$backtest", 0]}},
                        "accuracy_sum": {"$sum": {"$ifNull": ["$prediction_accuracy", 0]}},
                        "handled_ms": {"$avg": "$handled_ms"},
                    }
                },
            ]
        )
    ).to_list(None)
    kinds = {r["_id"]: r for r in rows}
    sets = sum(int(r["sets"]) for r in rows)
    confidence = sum(float(r["confidence_sum"]) for r in rows)
    lookups = sum(int(r["cache_lookups"]) for r in rows)
    hits = sum(int(r["cache_hits"]) for r in rows)
    backtests = sum(int(r["backtests"]) for r in rows)
    accuracy = sum(float(r["accuracy_sum"]) for r in rows)
    return MonitoringMlMetrics(
        predictions_generated=sets,
        generation_requests=int(kinds.get("generate", {}).get("requests", 0)),
        ensemble_requests=int(kinds.get("ensemble", {}).get("requests", 0)),
        statistics_requests=int(kinds.get("statistics", {}).get("requests", 0)),
        backtest_requests=int(kinds.get("backtest", {}).get("requests", 0)),
        avg_confidence_score=round(confidence / sets, 4) if sets else None,
        confidence_score_note="a model score (share of random sets the model scores lower), not a chance of winning",
        model_accuracy=round(accuracy / backtests, 4) if backtests else None,
        model_accuracy_random_baseline=round(6 / 45, 4),
        model_accuracy_definition=(
            "mean share of generated numbers that were drawn, over the backtests run in the period "
            "(null when none ran); uniform draws make 6/45 the expected value for every generator"
        ),
        cache_hit_rate=round(hits / lookups, 4) if lookups else None,
        cache_lookups=lookups,
        avg_worker_time_ms={k: round(float(r["handled_ms"]), 2) for k, r in sorted(kinds.items()) if r["handled_ms"]},
    )


async def _database_size_mb(db: AsyncDatabase, state: State) -> float | None:
    try:
        stats = await asyncio.wait_for(db.command("dbStats"), timeout=2.0)
        size = float(stats.get("storageSize", 0) or 0) + float(stats.get("indexSize", 0) or 0)
        if size > 0:
            return round(size / 2**20, 1)
    except Exception:  # noqa: BLE001 - fall back to the embedded data directory
        pass
    settings = state.get("settings")
    directory = getattr(settings, "data_dir", None)
    if directory is None or not os.path.isdir(directory):
        return None

    def du() -> int:
        total = 0
        for root, _, files in os.walk(directory):
            for name in files:
                with suppress(OSError):
                    total += os.path.getsize(os.path.join(root, name))
        return total

    return round(await asyncio.to_thread(du) / 2**20, 1)


async def resource_figures(db: AsyncDatabase, state: State) -> MonitoringResourceUsage:
    process = psutil.Process(os.getpid())
    now, cpu = time.monotonic(), _cpu_seconds()
    then, cpu_then = state.get("cpu_sample") or (now - 1e-9, cpu)
    state.cpu_sample = (now, cpu)
    wall = max(now - then, 1e-9)
    return MonitoringResourceUsage(
        cpu_usage_percent=round(100.0 * (cpu - cpu_then) / wall, 1),
        cpu_usage_window_seconds=round(wall, 1),
        cpu_cores=psutil.cpu_count(),
        memory_usage_mb=round(process.memory_info().rss / 2**20, 1),
        disk_usage_mb=await _database_size_mb(db, state),
        gpu_usage_percent=None,
        gpu="none (CPU-only build)",
        process={"pid": os.getpid(), "threads": process.num_threads()},
        note="this API process (with `modelbus up` the consumers run in it too); CPU is averaged since the "
        "previous metrics call; disk is the database size",
    )


async def worker_components(
    state: State, db: AsyncDatabase
) -> tuple[MonitoringModelsComponent, MonitoringCacheComponent]:
    """``ml_models`` and ``cache`` of ``GET /api/monitoring/health``, asked of a serving worker."""
    rpc: RpcClient = state.rpc
    t0 = time.perf_counter()
    registered = await db[mongo.MODELS].count_documents({"domain": "lotto"})
    try:
        reply = await rpc.call("lotto.status", {}, key="status", timeout_s=STATUS_TIMEOUT_S)
        ok, result, error = reply.ok, reply.result or {}, (reply.error.message if reply.error else None)
    except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
        ok, result, error = False, {}, f"{exc.__class__.__name__}: {exc}"
    elapsed = round((time.perf_counter() - t0) * 1000, 2)
    checked = iso(utcnow())
    if not ok:
        down: dict[str, Any] = {
            "status": "unavailable",
            "response_time_ms": elapsed,
            "last_check": checked,
            "error": error,
        }
        return MonitoringModelsComponent(**down, models_registered=registered), MonitoringCacheComponent(**down)
    cache = result.get("cache", {})
    return (
        MonitoringModelsComponent(
            status="healthy",
            response_time_ms=elapsed,
            last_check=checked,
            models_loaded=result.get("models_loaded", []),
            models=result.get("models", []),
            models_registered=registered,
            memory_usage_mb=result.get("memory_usage_mb"),
            last_prediction=result.get("last_prediction"),
            worker_id=result.get("worker_id"),
        ),
        MonitoringCacheComponent(
            status="healthy",
            response_time_ms=elapsed,
            last_check=checked,
            kind="serving worker's in-memory result cache (statistics, backtests)",
            hit_rate=cache.get("hit_rate"),
            hits=cache.get("hits"),
            misses=cache.get("misses"),
            entries=cache.get("entries"),
            http_response_cache="not_configured",
        ),
    )


async def recent_performance(state: State, db: AsyncDatabase, minutes: int = 5) -> MonitoringPerformance:
    """``performance`` of the health body: the last few minutes of the request log."""
    request_log: RequestLog | None = state.get("request_log")
    if request_log is not None:
        await request_log.flush()
    end = utcnow()
    try:
        figures = await request_figures(db, end - timedelta(minutes=minutes), end)
    except PyMongoError as exc:
        return MonitoringPerformance(error=exc.__class__.__name__)
    return MonitoringPerformance(
        window_minutes=minutes,
        avg_response_time_ms=figures.avg_response_time_ms,
        requests_per_minute=figures.requests_per_minute,
        error_rate=figures.error_rate,
    )


class MonitoringController(Controller):
    guards = [api_key_guard]
    tags = ["monitoring"]

    @get(
        "/api/monitoring/metrics",
        summary="Request, ML and resource metrics over a period (e.g. 1h)",
        responses=error_responses(422),
    )
    async def metrics(
        self,
        db: AsyncDatabase,
        state: State,
        period: Annotated[
            str,
            Parameter(
                description="a number and a unit (s, sec, m, min, h, d), e.g. 15m, 1h, 24h, 7d. The pattern states "
                "the form; the span must also be between 1m and 7d (requests are kept 7 days), a rule the schema "
                "does not state (422 VALIDATION_ERROR)",
                schema_extra={"pattern": PERIOD_PATTERN},
            ),
        ] = "1h",
    ) -> MonitoringMetrics:
        span = parse_period(period)
        request_log: RequestLog | None = state.get("request_log")
        if request_log is not None:
            await request_log.flush()  # include everything answered before this request
        end = utcnow()
        start = end - span
        requests, ml, resources = await asyncio.gather(
            request_figures(db, start, end), ml_figures(db, start, end), resource_figures(db, state)
        )
        return MonitoringMetrics(
            period=MonitoringPeriod(
                start=iso(start), end=iso(end), duration_minutes=round(span.total_seconds() / 60, 2)
            ),
            request_metrics=requests,
            ml_metrics=ml,
            resource_usage=resources,
            definitions=MonitoringDefinitions(
                failed_requests="responses with status >= 400 (client_errors 4xx + server_errors 5xx)",
                percentiles="server-side latency from the first middleware to the last byte, in ms",
            ),
        )
