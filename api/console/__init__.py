"""The web console at ``/ui``: server-rendered Jinja pages on the API's own app, live updates over
server-sent events fed from the Kafka topics (``api/console/hub.py``), charts drawn by uPlot (vendored in
``static/vendor/uplot`` with its licence): nothing is loaded from another host.

Adding pages: a module ``api/console/pages_<name>.py`` with a list ``HANDLERS`` of Litestar handlers
(paths relative to ``/ui``) and one line in ``PAGE_MODULES`` below. Every handler is guarded by
``session.console_principal`` (a session or the login page) and gets the ``console`` dependency
(``session.ConsoleSession``); actions call ``session.require_action(request, scope)``."""

from __future__ import annotations

import importlib
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
    "api.console.pages_deploy",
    "api.console.pages_canary",
    "api.console.pages_rl",
    "api.console.pages_lotto",
]

NAV = [
    ("jobs", "Jobs", "/ui/jobs"),
    ("models", "Models", "/ui/models"),
    ("deployments", "Deployments", "/ui/deployments"),
    ("rl", "RL", "/ui/rl"),
    ("lotto", "Lotto", "/ui/lotto"),
    ("events", "Events", "/ui/events"),
]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)
"""Everything from the server itself: a page cannot load or send anything to another host."""


def _handlers() -> list[Any]:
    handlers: list[Any] = []
    for name in PAGE_MODULES:
        handlers.extend(importlib.import_module(name).HANDLERS)
    return handlers


def _template_globals(engine: JinjaTemplateEngine) -> None:
    engine.engine.globals["NAV"] = NAV


template_config = TemplateConfig(directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=_template_globals)
"""For ``Litestar(template_config=...)``."""

static_router = create_static_files_router(
    path="/static",
    directories=[STATIC_DIR],
    include_in_schema=False,
    opt=session.PUBLIC,
    name="console:static",
)

console_router = Router(
    path="/ui",
    route_handlers=[*_handlers(), static_router],
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

__all__ = ["NAV", "PAGE_MODULES", "close_hub", "console_router", "template_config"]
