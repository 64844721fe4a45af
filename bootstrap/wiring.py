"""Assembles the platform with the domains: the API app, a process's consumers, the roles. Every entry point
(``modelbus up``/``worker``, an ASGI server, replay, the tests) builds through here, after ``install``."""

from __future__ import annotations

from litestar import Litestar

from api.app import create_app
from bootstrap.domain import console_nav, console_pages, routes, training, workers
from bootstrap.domains import DOMAINS, install
from consumers.runtime import Consumers, all_roles
from infra.settings import Settings
from infra.telemetry import setup_logging, setup_tracing

ALL_ROLES: tuple[str, ...] = all_roles(workers(DOMAINS))
"""the platform's roles and the domains' (``modelbus worker --roles``)"""


def app(settings: Settings) -> Litestar:
    domains = install()
    return create_app(settings, routes(domains), console_pages(domains), console_nav(domains))


def consumers(settings: Settings, roles: tuple[str, ...] | None = None) -> Consumers:
    domains = install()
    return Consumers(settings, workers=workers(domains), training=training(domains), roles=roles)


def app_from_env() -> Litestar:
    """The API alone, for an ASGI server: ``uvicorn --factory bootstrap.wiring:app_from_env`` (settings from the
    ``MODELBUS_`` variables or ``stack.json``). Several of these can share one stack."""
    settings = Settings().with_stack_file()
    setup_logging(settings.log_level, settings.log_json)
    setup_tracing()  # before the app: it installs server spans only when they are exported
    return app(settings)
