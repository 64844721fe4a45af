"""Response models of the service's own monitoring (``/api/monitoring/...``, the health endpoints): request
metrics, resource usage, loaded models, caches. Served for every family, so part of the platform."""

from __future__ import annotations

from pydantic import BaseModel, Field, create_model

from schemas.common import ComponentHealth, document_zero_bounds


class MonitoringPeriod(BaseModel):
    """The period the metrics cover."""

    start: str
    end: str
    duration_minutes: float


class MonitoringRouteMetrics(BaseModel):
    """Requests of one route (method and path template) in the period."""

    method: str
    path: str = Field(description="route template, e.g. /api/models/train/{job_id}")
    requests: int
    failed: int = Field(description="responses with status >= 400")
    avg_response_time_ms: float | None


_PERCENTILE = "server-side latency percentile in ms; null when no request was recorded"

MonitoringRequestMetrics = create_model(
    "MonitoringRequestMetrics",
    __doc__="Requests recorded in the period (every route the router matched).",
    __module__=__name__,
    total_requests=(int, ...),
    successful_requests=(int, ...),
    failed_requests=(int, Field(description="responses with status >= 400")),
    client_errors=(int, Field(description="4xx responses")),
    server_errors=(int, Field(description="5xx responses")),
    error_rate=(float | None, Field(description="failed / total; null when no request")),
    requests_per_minute=(float, ...),
    avg_response_time_ms=(float | None, ...),
    **{  # not identifiers: the seed's names
        "50th_percentile_ms": (float | None, Field(description=_PERCENTILE)),
        "95th_percentile_ms": (float | None, Field(description=_PERCENTILE)),
        "99th_percentile_ms": (float | None, Field(description=_PERCENTILE)),
    },
    by_route=(list[MonitoringRouteMetrics], Field(description="the 15 busiest routes")),
)


class MonitoringMlMetrics(BaseModel):
    """What the serving workers recorded in the period (generation, ensemble, statistics, backtests)."""

    predictions_generated: int = Field(description="number sets generated (generation and ensemble)")
    generation_requests: int
    ensemble_requests: int
    statistics_requests: int
    backtest_requests: int
    avg_confidence_score: float | None
    confidence_score_note: str
    model_accuracy: float | None = Field(description="see model_accuracy_definition")
    model_accuracy_random_baseline: float
    model_accuracy_definition: str
    cache_hit_rate: float | None = Field(description="statistics and backtest result cache; null without lookups")
    cache_lookups: int
    avg_worker_time_ms: dict[str, float] = Field(description="mean handling time in the worker per request kind")


class MonitoringProcess(BaseModel):
    """The API process."""

    pid: int
    threads: int


class MonitoringResourceUsage(BaseModel):
    """Resources of this API process (with ``modelbus up`` the consumers run in it too)."""

    cpu_usage_percent: float = Field(description="averaged since the previous metrics call")
    cpu_usage_window_seconds: float
    cpu_cores: int | None
    memory_usage_mb: float = Field(description="resident set size")
    disk_usage_mb: float | None = Field(description="the database size")
    gpu_usage_percent: float | None = Field(description="null: CPU-only build")
    gpu: str
    process: MonitoringProcess
    note: str


class MonitoringDefinitions(BaseModel):
    """What the request figures mean."""

    failed_requests: str
    percentiles: str


class MonitoringMetrics(BaseModel):
    """``GET /api/monitoring/metrics`` (seed 003 4.2): request, ML and resource metrics over a period."""

    period: MonitoringPeriod
    request_metrics: MonitoringRequestMetrics
    ml_metrics: MonitoringMlMetrics
    resource_usage: MonitoringResourceUsage
    definitions: MonitoringDefinitions


class MonitoringLoadedModel(BaseModel):
    """A lotto member loaded in the serving worker's memory."""

    machine_type: str
    model_type: str
    model_id: str
    model_name: str
    loaded_at: str


class MonitoringModelsComponent(BaseModel):
    """``ml_models`` of the monitoring health, asked of a serving worker (``lotto.status``)."""

    status: str = Field(description="healthy, or unavailable when no serving worker answered")
    response_time_ms: float
    last_check: str
    error: str | None = Field(None, description="why no worker answered; null when healthy")
    models_loaded: list[str] | None = Field(None, description="machines with a member in memory; null when unavailable")
    models: list[MonitoringLoadedModel] | None = Field(None, description="null when unavailable")
    models_registered: int = Field(description="lotto members in the registry")
    memory_usage_mb: float | None = Field(None, description="the worker's resident set size")
    last_prediction: str | None = None
    worker_id: str | None = None


class MonitoringCacheComponent(BaseModel):
    """``cache`` of the monitoring health: the serving worker's result cache."""

    status: str = Field(description="healthy, or unavailable when no serving worker answered")
    response_time_ms: float
    last_check: str
    error: str | None = Field(None, description="why no worker answered; null when healthy")
    kind: str | None = None
    hit_rate: float | None = None
    hits: int | None = None
    misses: int | None = None
    entries: int | None = None
    http_response_cache: str | None = Field(None, description="not_configured; null when unavailable")


class MonitoringPerformance(BaseModel):
    """``performance`` of the monitoring health: the last few minutes of the request log."""

    window_minutes: int | None = None
    avg_response_time_ms: float | None = None
    requests_per_minute: float | None = None
    error_rate: float | None = None
    error: str | None = Field(None, description="why the request log could not be read; null otherwise")


class MonitoringHealthComponents(BaseModel):
    """The components of ``GET /api/monitoring/health``."""

    database: ComponentHealth
    broker: ComponentHealth
    ml_models: MonitoringModelsComponent
    cache: MonitoringCacheComponent


class MonitoringHealth(BaseModel):
    """``GET /api/monitoring/health`` (seed 003 4.1): 200 when the database and broker answer, 503 otherwise."""

    status: str = Field(description="healthy, degraded (no serving worker answered) or unhealthy")
    timestamp: str
    components: MonitoringHealthComponents
    performance: MonitoringPerformance


document_zero_bounds(globals())
