"""Documentation: ``/docs`` (Swagger UI), ``/redoc``, ``/openapi.json``, ``/asyncapi`` (HTML)
and ``/asyncapi.json``. Small explicit handlers (OpenAPIConfig(path="/") would swallow 404s)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get

from infra.asyncapi import asyncapi_html, asyncapi_json

_SWAGGER = """<!doctype html><html><head><title>modelbus API</title><meta charset="utf-8"/>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div><script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
<noscript>The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</noscript></body></html>"""

_REDOC = """<!doctype html><html><head><title>modelbus API</title><meta charset="utf-8"/></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
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
