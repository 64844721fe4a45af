"""The web console at ``/ui``: server-rendered Jinja pages on the API's own app, live updates over
server-sent events fed from the Kafka topics (``api/console/hub.py``), charts drawn by uPlot (vendored in
``static/vendor/uplot`` with its licence): nothing is loaded from another host.

The platform's pages (login, jobs, models, events) are listed in ``PAGE_MODULES``; a domain's pages (deployments
and canaries, RL, lotto) live in its own package (``api/<domain>/console.py``: a list ``HANDLERS`` of Litestar
handlers with paths relative to ``/ui``) and come in through its declaration (``Domain.console``, with its
``Domain.console_nav`` entries). Every handler is guarded by ``session.console_principal`` (a session or the login
page) and gets the ``console`` dependency (``session.ConsoleSession``); actions call
``session.require_action(request, scope)``."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litestar import Router
from litestar.datastructures import ResponseHeader
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.console import session
from api.console.hub import close_hub

CONSOLE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = CONSOLE_DIR / "templates"
STATIC_DIR = CONSOLE_DIR / "static"

PAGE_MODULES = [
    "api.console.session",
    "api.console.pages_jobs",
    "api.console.pages_models",
    "api.console.pages_events",
]

NavItem = tuple[str, str, str]
"""(key, label, href) of a navigation link"""
NAV_FIRST: list[NavItem] = [("jobs", "Jobs", "/ui/jobs"), ("models", "Models", "/ui/models")]
NAV_LAST: list[NavItem] = [("events", "Events", "/ui/events")]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)
"""Everything from the server itself: a page cannot load or send anything to another host."""


def _platform_handlers() -> list[Any]:
    handlers: list[Any] = []
    for name in PAGE_MODULES:
        handlers.extend(importlib.import_module(name).HANDLERS)
    return handlers


def console(domain_pages: Sequence[Any], domain_nav: Sequence[NavItem]) -> tuple[Router, TemplateConfig]:
    """The ``/ui`` router with the platform's and the domains' pages, and the template configuration for
    ``Litestar(template_config=...)`` (its navigation lists the domains' pages between jobs/models and events)."""
    nav = [*NAV_FIRST, *domain_nav, *NAV_LAST]

    def template_globals(engine: JinjaTemplateEngine) -> None:
        engine.engine.globals["NAV"] = nav

    static_router = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        include_in_schema=False,
        opt=session.PUBLIC,
        name="console:static",
    )
    router = Router(
        path="/ui",
        route_handlers=[*_platform_handlers(), *domain_pages, static_router],
        guards=[session.console_principal],
        dependencies={"console": Provide(session.console_session, sync_to_thread=False)},
        exception_handlers={
            session.LoginRequired: session.login_required_handler,
            NotFoundException: session.not_found_handler,
        },
        response_headers=[ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY)],
        middleware=[session.RenewSession()],
        include_in_schema=False,
    )
    return router, TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=template_globals)


__all__ = ["PAGE_MODULES", "NavItem", "close_hub", "console"]
