"""The trace context of each HTTP request while no tracer exports spans.

With an exporter configured (``OTEL_EXPORTER_OTLP_ENDPOINT``, or a test's in-memory exporter) the app installs
Litestar's OpenTelemetry plugin, which records a server span per request. Without one those spans are never
recorded (``infra.telemetry.WhenExported``), and the plugin's ASGI instrumentation still cost about a tenth of
the API's CPU per prediction (issue 16, py-spy). ``server_span`` (entered by ``api.middleware.HttpEdge``) keeps
what matters then: the caller's ``traceparent`` is continued (or a new trace begun), so every log line of the
request carries its trace id and every message it publishes carries ``traceparent``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from litestar.types import Scope
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from api.caching import request_header

_tracer = trace.get_tracer("modelbus.api")


def server_span(scope: Scope) -> AbstractContextManager[Any]:
    """A server span for the request, child of the caller's ``traceparent`` if it sent one (``api.middleware``)."""
    given = request_header(scope, b"traceparent")
    parent = propagate.extract({"traceparent": given}) if given else None
    return _tracer.start_as_current_span(scope.get("method", "HTTP"), context=parent, kind=SpanKind.SERVER)
