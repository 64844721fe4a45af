"""The API's own request metrics (``api.http_metrics``) and, without an exporter, the trace context of each
request (``api.trace_context``): what replaced Litestar's Prometheus and OpenTelemetry middlewares on the hot
path (issue 16)."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.middleware import DefineMiddleware
from litestar.testing import TestClient
from opentelemetry import trace
from prometheus_client import REGISTRY

from api.middleware import HttpEdge
from infra.telemetry import setup_tracing


@get("/things/{thing_id:str}", sync_to_thread=False)
def thing(thing_id: str) -> dict[str, str]:
    context = trace.get_current_span().get_span_context()
    return {"thing": thing_id, "trace_id": f"{context.trace_id:032x}" if context.is_valid else ""}


@get("/broken", sync_to_thread=False)
def broken() -> None:
    raise RuntimeError("boom")


setup_tracing()  # the SDK provider every modelbus process installs (ids even for unrecorded spans)
APP = Litestar(  # no logging_config: Litestar's default would replace the root logger's handlers
    [thing, broken], middleware=[DefineMiddleware(HttpEdge)], logging_config=None
)


def _sample(name: str, path: str, status: str) -> float:
    labels = {"method": "GET", "path": path, "status_code": status, "app_name": "modelbus"}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_and_timed_by_route_template_and_status() -> None:
    before = _sample("litestar_requests_total", "/things/{thing_id}", "200")
    errors_before = _sample("litestar_requests_error_total", "/broken", "500")
    with TestClient(APP) as client:
        assert client.get("/things/a").status_code == 200
        assert client.get("/things/b").status_code == 200
        assert client.get("/broken").status_code == 500
    assert _sample("litestar_requests_total", "/things/{thing_id}", "200") == before + 2
    assert _sample("litestar_request_duration_seconds_count", "/things/{thing_id}", "200") >= 2
    assert _sample("litestar_requests_error_total", "/broken", "500") == errors_before + 1
    assert _sample("litestar_requests_error_total", "/things/{thing_id}", "200") == 0.0


def test_the_callers_traceparent_is_continued_and_a_new_trace_begun_without_one() -> None:
    caller = "0af7651916cd43dd8448eb211c80319c"
    with TestClient(APP) as client:
        continued = client.get("/things/a", headers={"traceparent": f"00-{caller}-b7ad6b7169203331-01"}).json()
        first, second = client.get("/things/b").json(), client.get("/things/c").json()
    assert continued["trace_id"] == caller
    assert len(first["trace_id"]) == 32 and first["trace_id"] != "0" * 32
    assert first["trace_id"] != second["trace_id"] != caller
