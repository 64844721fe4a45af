"""Session fixtures: one real stack (embedded Tansu broker + SecantusDB daemon, the API on a
free port, every consumer) started once per test session on a background thread. Nothing is
mocked: tests talk HTTP to the API, and read Kafka and MongoDB directly."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import MongoClient

from bootstrap.domains import install
from bootstrap.stack import StackThread
from infra.settings import Settings
from infra.telemetry import JsonFormatter, setup_tracing

install()  # the domains' topics, read models and indexes (as every entry point does)

TEST_KEY = "mb_test-admin-key-0123456789abcdefghijklmnopqrstuv"


class _LineCollector(logging.Handler):
    """Keeps every log line of the session, formatted as in production (JSON, redacted)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a log line that cannot be formatted is not a secret leak
            pass


_COLLECTOR = _LineCollector()
logging.getLogger().addHandler(_COLLECTOR)
logging.getLogger().setLevel(logging.INFO)


def captured_log_lines() -> list[str]:
    return _COLLECTOR.lines


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("modelbus-tests", extra_processor=SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, span_exporter: InMemorySpanExporter) -> Iterator[StackThread]:
    data_dir: Path = tmp_path_factory.mktemp("modelbus")
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        port=0,
        api_key=TEST_KEY,
        job_lease_seconds=4.0,
        progress_interval_seconds=0.2,
        demo_records_per_day=200,
        train_processes=2,
        worker_layout="inline",  # consumers in this process: their log lines reach the test log collector
        kafka_bootstrap=os.environ.get("MODELBUS_KAFKA_BOOTSTRAP"),
        mongodb_url=os.environ.get("MODELBUS_MONGODB_URL"),
        mongodb_db=f"modelbus_test_{int(time.time())}",
        topic_prefix=f"t{int(time.time())}.",
    )
    thread = StackThread(settings, demo=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="session")
def settings(stack: StackThread) -> Settings:
    return stack.stack.settings


@pytest.fixture(scope="session")
def base_url(stack: StackThread) -> str:
    return str(stack.stack.info["api_url"])


RETRY_ATTEMPTS = 4


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before trying again, or None if ``response`` is not a 429."""
    return min(float(response.headers.get("Retry-After", "1")), 60) if response.status_code == 429 else None


class HonourRetryAfter(httpx.HTTPTransport):
    """What a well-behaved client of modelbus does with a 429: waits ``Retry-After`` and tries again. The
    suite's shared key is an enterprise key (1,000 requests a minute) and the suite, with its status
    polling, can send more than that in a minute; the tests of the limits use keys and clients of their own."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(RETRY_ATTEMPTS):
            response = super().handle_request(request)
            if (delay := retry_after(response)) is None:
                return response
            response.read()
            time.sleep(delay)
        return super().handle_request(request)


class AsyncHonourRetryAfter(httpx.AsyncHTTPTransport):
    """``HonourRetryAfter`` for ``httpx.AsyncClient``."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(RETRY_ATTEMPTS):
            response = await super().handle_async_request(request)
            if (delay := retry_after(response)) is None:
                return response
            await response.aread()
            await asyncio.sleep(delay)
        return await super().handle_async_request(request)


@pytest.fixture(scope="session")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=base_url, headers={"X-API-Key": TEST_KEY}, timeout=30, transport=HonourRetryAfter()
    ) as client:
        yield client


@pytest.fixture(scope="session")
def anon(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def db(settings: Settings) -> Iterator[Any]:
    client: MongoClient = MongoClient(settings.mongodb_url, tz_aware=True)
    yield client[settings.mongodb_db]
    client.close()


@pytest.fixture(scope="session")
def archive(settings: Settings) -> Iterator[Any]:
    """The event archive collection, on the archive's own database server."""
    client: MongoClient = MongoClient(settings.archive_url, tz_aware=True)
    yield client[settings.mongodb_db]["archive"]
    client.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    """Polls ``predicate`` until it returns something truthy (the value is returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


SEED_TRAIN_BODY = {
    "model_type": "lightgbm",
    "data_period": {"start_date": "2025-10-01", "end_date": "2025-11-15"},
    "hyperparameters": {"max_depth": 7, "learning_rate": 0.1, "n_estimators": 100},
}


def wait_job(api: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = api.get(f"/v1/ml/train/status/{job_id}").json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(done, timeout, what=f"job {job_id} to finish")
