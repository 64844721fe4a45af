"""Prometheus figures of the HTTP requests, recorded by ``api.monitoring.record_request`` (which already
times every request) under the names and labels of Litestar's ``PrometheusMiddleware``:
``litestar_requests_total``, ``litestar_request_duration_seconds`` and ``litestar_requests_error_total`` (5xx),
labelled ``method``, ``path`` (the route template), ``status_code`` and ``app_name``.

Litestar's middleware built a ``Request`` and looked up five labelled series per request: about a tenth of
the API's CPU per prediction (issue 16, py-spy). Here each (method, route, status) finds its series in one
dictionary lookup. Served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

APP_NAME = "modelbus"
LABELS = ("method", "path", "status_code", "app_name")

REQUESTS = Counter("litestar_requests_total", "Total requests", LABELS)
DURATION = Histogram("litestar_request_duration_seconds", "Request duration, in seconds", LABELS)
ERRORS = Counter("litestar_requests_error_total", "Total errors (status >= 500)", LABELS)

_series: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}


def record(method: str, path: str, status: int, seconds: float) -> None:
    key = (method, path, status)
    series = _series.get(key)
    if series is None:
        values = (method, path, str(status), APP_NAME)
        series = _series[key] = (
            REQUESTS.labels(*values),
            DURATION.labels(*values),
            ERRORS.labels(*values) if status >= 500 else None,
        )
    requests, duration, errors = series
    requests.inc()
    duration.observe(seconds)
    if errors is not None:
        errors.inc()
