"""Documentation: ``/docs`` (Swagger UI), ``/redoc``, ``/openapi.json``, ``/asyncapi`` (HTML)
and ``/asyncapi.json``. Small explicit handlers (OpenAPIConfig(path="/") would swallow 404s).

Swagger UI and ReDoc are served from ``api/static/vendor`` (``/static/vendor/...``, with their licences):
the pages load nothing from another host, so they work without internet access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, MediaType, Request, Response, Router, get
from litestar.static_files import create_static_files_router

from infra.asyncapi import asyncapi_html, asyncapi_json

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def static_router() -> Router:
    """``/static``: the vendored Swagger UI and ReDoc (cached for a day by browsers)."""
    return create_static_files_router(
        path="/static", directories=[STATIC_DIR], include_in_schema=False, cache_control=None
    )

_SWAGGER = """<!doctype html><html><head><title>modelbus API</title><meta charset="utf-8"/>
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui", validatorUrl: null});</script>
<noscript>The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript></body></html>"""

_REDOC = """<!doctype html><html><head><title>modelbus API</title><meta charset="utf-8"/></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/static/vendor/redoc/redoc.standalone.js"></script>
<noscript>The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript></body></html>"""


class DocsController(Controller):
    include_in_schema = False

    @get("/openapi.json", media_type=MediaType.JSON)
    async def openapi(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        return request.app.openapi_schema.to_schema()

    @get("/docs", media_type=MediaType.HTML)
    async def swagger(self) -> str:
        return _SWAGGER

    @get("/redoc", media_type=MediaType.HTML)
    async def redoc(self) -> str:
        return _REDOC

    @get("/asyncapi.json", media_type=MediaType.JSON)
    async def asyncapi_document(self, request: Request[Any, Any, Any]) -> Response[str]:
        return Response(asyncapi_json(request.app.state.settings), media_type=MediaType.JSON)

    @get("/asyncapi", media_type=MediaType.HTML)
    async def asyncapi_page(self, request: Request[Any, Any, Any]) -> str:
        return asyncapi_html(request.app.state.settings)
