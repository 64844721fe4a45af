"""The Litestar application: one server for the three API families."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusController
from opentelemetry import trace
from pymongo.asynchronous.database import AsyncDatabase

from api.caching import RESPONSE_CACHE
from api.console import NavItem, close_hub, console
from api.errors import EXCEPTION_HANDLERS, ContractSchemaPlugin
from api.keep_warm import KeepWarm
from api.middleware import HttpEdge
from api.monitoring import MonitoringController, monitoring_lifespan
from api.ratelimit import RateLimiter
from api.routes.auth import AuthController
from api.routes.docs import DocsController, static_router
from api.routes.health import VERSION, HealthController
from api.security import KeyCache, api_key_guard
from infra import mongo
from infra.kafka import make_broker
from infra.settings import Settings
from infra.telemetry import exporting
from infra.users import jwt_secret
from producers.publisher import BrokerUnavailable, EventPublisher
from producers.rpc import RpcClient

log = logging.getLogger("modelbus.api")


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def create_app(
    settings: Settings,
    domain_routes: Sequence[Any],
    console_pages: Sequence[Any] = (),
    console_nav: Sequence[NavItem] = (),
) -> Litestar:
    """The app: the platform's routes (auth, monitoring, health, docs, metrics) and the domains' ``domain_routes``
    and console pages (from the composition root, ``bootstrap``)."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        client = mongo.client(settings)
        db = client[settings.mongodb_db]
        publisher = EventPublisher(make_broker(settings, client_id="api"), settings)
        rpc = RpcClient(publisher, settings)
        app.state.update(
            {
                "client": client,
                "db": db,
                "publisher": publisher,
                "rpc": rpc,
                "key_cache": KeyCache(),
                "limiter": RateLimiter(db),
                "started_monotonic": time.monotonic(),
                "jwt_secret": await jwt_secret(db, settings.jwt_secret),
            }
        )
        try:
            await publisher.connect()
        except BrokerUnavailable:
            log.warning("Kafka unreachable at start; commands will answer 503 until it is back")
        app.state.limiter.start()
        keep_warm = KeepWarm(rpc, db, settings.keep_warm_seconds)
        keep_warm.start()
        try:
            yield
        finally:
            await keep_warm.stop()
            await app.state.limiter.stop()
            await rpc.close()
            await publisher.close()
            await client.close()

    def provide_db(state: State) -> AsyncDatabase:
        return state.db

    def provide_publisher(state: State) -> EventPublisher:
        return state.publisher

    def provide_rpc(state: State) -> RpcClient:
        return state.rpc

    console_router, template_config = console(console_pages, console_nav)
    metrics = (
        MetricsController
        if settings.metrics_public
        else type("ProtectedMetricsController", (MetricsController,), {"guards": [api_key_guard]})
    )
    # server spans only while something exports them; without an exporter the trace context alone (issue 16)
    tracing = exporting()
    trace_plugins = [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=trace.get_tracer_provider()))]
    return Litestar(
        route_handlers=[
            AuthController,
            *domain_routes,
            MonitoringController,
            HealthController,
            DocsController,
            static_router(),
            console_router,
            metrics,
        ],
        lifespan=[lifespan, monitoring_lifespan],
        on_shutdown=[close_hub],  # the console's Kafka readers
        dependencies={
            "db": Provide(provide_db, sync_to_thread=False),
            "publisher": Provide(provide_publisher, sync_to_thread=False),
            "rpc": Provide(provide_rpc, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[DefineMiddleware(HttpEdge, trace_context=not tracing)],
        plugins=[
            *(trace_plugins if tracing else []),
            ContractSchemaPlugin(),  # /openapi.json states extra="forbid" and model-level rules (issue 14)
        ],
        openapi_config=OpenAPIConfig(
            title="modelbus",
            version=VERSION,
            path="/schema",
            description="Event-driven ML platform: fraud models, lotto, RL placement.",
        ),
        cors_config=CORSConfig(allow_origins=settings.cors_origins),
        logging_config=None,  # the process's own logging (infra.telemetry.setup_logging), not Litestar's default
        response_cache_config=RESPONSE_CACHE,
        template_config=template_config,
        state=State({"settings": settings}),
        debug=False,
    )
