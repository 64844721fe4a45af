"""Tracing (OpenTelemetry, OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set), structured logs."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import Attributes

from schemas.common import iso, utcnow

_SECRET = re.compile(r"(?i)(api[_-]?key|token|password|secret|authorization)([\"'=:\s]+)([^\s\"'&,}]+)")


def redact(text: str) -> str:
    """Masks anything that looks like a credential in a log line."""
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace id and any ``extra`` ids."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": iso(utcnow()),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out["trace_id"] = f"{span.trace_id:032x}"
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


LOG_FILE = "modelbus.jsonl"


def setup_logging(level: str = "INFO", as_json: bool | None = None, log_dir: Path | None = None) -> Path | None:
    """Logs for people on a terminal, JSON lines for machines.

    ``as_json`` None (the default, ``MODELBUS_LOG_JSON`` unset) decides by stderr: not a terminal (a pipe, a
    container, a service manager) → every record as JSON on stderr; a terminal → only warnings and errors on
    stderr, one short line each, and, with ``log_dir``, the full JSON log in ``log_dir/modelbus.jsonl``
    (returned). ``True`` / ``False`` force JSON / the short lines on stderr."""
    console = as_json is None and sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [handler]
    log_file: Path | None = None
    if console:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler.setLevel(logging.WARNING)
    elif as_json is False:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    if console and log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / LOG_FILE
        to_file = logging.FileHandler(log_file, encoding="utf-8")  # appends: the workers share it
        to_file.setFormatter(JsonFormatter())
        handlers.append(to_file)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "httpx", "uvicorn.access", "faststream"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return log_file


class WhenExported(Sampler):
    """Records every span once something exports them (OTLP, or a test's in-memory exporter), none before.

    Unrecorded spans still get trace and span ids, so ``traceparent`` goes on every message and log lines
    carry a trace id; what is skipped is building attributes and events nobody reads (measured on the
    prediction path: about a tenth of the API's and the serving worker's CPU)."""

    def __init__(self) -> None:
        self.exporting = False

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        decide = ALWAYS_ON if self.exporting else ALWAYS_OFF
        return decide.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "WhenExported"


_provider: TracerProvider | None = None
_sampler = WhenExported()


def exporting() -> bool:
    """Whether spans are recorded: an OTLP exporter or another span processor (a test's) is installed."""
    return _sampler.exporting


def setup_tracing(service_name: str = "modelbus", extra_processor: SpanProcessor | None = None) -> TracerProvider:
    """Installs one global tracer provider (idempotent); adds OTLP export when configured and
    instruments PyMongo so database writes join the trace. Spans are recorded only while something
    exports them (``WhenExported``)."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=_sampler)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _sampler.exporting = True
        trace.set_tracer_provider(_provider)
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        if not PymongoInstrumentor().is_instrumented_by_opentelemetry:
            PymongoInstrumentor().instrument(tracer_provider=_provider)
    if extra_processor is not None:
        _provider.add_span_processor(extra_processor)
        _sampler.exporting = True
    return _provider
