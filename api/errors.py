"""The one error body for every API family (the one error type is ``schemas.errors.ApiError``):
``{"status":"error","error":{"code","message","field"},"timestamp","request_id"}``
(``details`` for validation errors, ``retry_after_seconds`` for 429, ``support_id`` for 500)."""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins.pydantic import PydanticSchemaPlugin
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.typing import FieldDefinition
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from producers.publisher import BrokerUnavailable
from schemas.common import ErrorBody, iso, utcnow
from schemas.errors import ApiError

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

log = logging.getLogger("modelbus.api")


def request_id_of(request: Request[Any, Any, Any]) -> str:
    return str(request.scope.get("state", {}).get("request_id") or "")


def error_response(
    request: Request[Any, Any, Any],
    status_code: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    request_id = request_id_of(request)
    headers = dict(headers or {})
    if not request_id:  # unknown routes are answered before any middleware runs
        request_id = request.headers.get("x-request-id") or f"req_{secrets.token_hex(8)}"
        headers["X-Request-ID"] = request_id
    body: dict[str, Any] = {
        "status": "error",
        "error": {"code": code, "message": message, "field": field, **extra},
        "timestamp": iso(utcnow()),
        "request_id": request_id,
    }
    return Response(body, status_code=status_code, headers=headers, media_type=MediaType.JSON)


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMIT_EXCEEDED",
}


_MISSING = re.compile(r"Missing required (\w+) parameter '([^']+)'")


def _details(exc: ValidationException) -> list[dict[str, Any]]:
    out = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            out.append(
                {
                    "field": item.get("key") or None,
                    "message": item.get("message"),
                    **({"value": item["value"]} if "value" in item else {}),
                }
            )
    return out


def handle_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    return error_response(
        request, exc.status_code, exc.code, exc.message, field=exc.field, headers=exc.headers, **exc.extra
    )


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        details = _details(exc)
        missing = _MISSING.match(exc.detail or "")
        if not details and missing:  # a required query/path/header parameter is absent: not a JSON problem
            field = missing.group(2)
            return error_response(
                request,
                422,
                "VALIDATION_ERROR",
                f"{field}: the {missing.group(1)} parameter is required",
                field=field,
                details=[{"field": field, "message": f"required {missing.group(1)} parameter"}],
            )
        if not details:  # Litestar reports malformed JSON as a ValidationException without field details
            return error_response(request, 400, "INVALID_JSON", f"the request body is not valid JSON: {exc.detail}")
        first = details[0]
        return error_response(
            request,
            422,
            "VALIDATION_ERROR",
            "; ".join(f"{d['field']}: {d['message']}" if d["field"] else str(d["message"]) for d in details),
            field=first["field"],
            details=details,
        )
    if exc.status_code == 400 and "json" in request.headers.get("content-type", ""):
        return error_response(request, 400, "INVALID_JSON", f"the request body is not valid JSON: {exc.detail}")
    if isinstance(exc, NotFoundException):
        return error_response(request, 404, "NOT_FOUND", exc.detail or "not found")
    code = _STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
    return error_response(request, exc.status_code, code, exc.detail, headers=exc.headers)


def handle_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    part = "broker" if isinstance(exc, BrokerUnavailable) else "database"
    log.warning("dependency unavailable", extra={"part": part, "request_id": request_id_of(request)})
    return error_response(
        request,
        503,
        "SERVICE_UNAVAILABLE",
        f"the {part} is unreachable; nothing was accepted",
        headers={"Retry-After": "5"},
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    support_id = f"sup_{secrets.token_hex(6)}"
    log.exception("unhandled error", extra={"request_id": request_id_of(request), "support_id": support_id})
    return error_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "an internal error occurred; quote the support id when reporting it",
        support_id=support_id,
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ApiError: handle_api_error,
    HTTPException: handle_http,
    BrokerUnavailable: handle_unavailable,
    ServerSelectionTimeoutError: handle_unavailable,
    ConnectionFailure: handle_unavailable,
    Exception: handle_unexpected,
}


# --- the error answers each operation documents in /openapi.json (every one has the ErrorBody schema) ---

_ERROR_DESCRIPTIONS = {
    400: "Bad request: the body is not valid JSON (INVALID_JSON) or a request rule was broken",
    401: "No credentials, or credentials that are not valid (UNAUTHORIZED, INVALID_TOKEN, TOKEN_EXPIRED)",
    403: "The credentials lack the scope this route needs (FORBIDDEN)",
    404: "The resource does not exist (…_NOT_FOUND)",
    409: "The resource is not in a state that allows this (for example a finished job, a model not in staging)",
    413: "The request body is too large",
    415: "The request body's media type is not accepted",
    422: "The request is well-formed but not valid (VALIDATION_ERROR with details, or a domain rule)",
    429: "Rate limit of the caller's tier exceeded (RATE_LIMIT_EXCEEDED, retry_after_seconds, Retry-After)",
    500: "Unexpected error (INTERNAL_ERROR, support_id)",
    503: "The database or the broker is unreachable; nothing was accepted (SERVICE_UNAVAILABLE, Retry-After)",
}

_ERROR_EXAMPLES: dict[int, dict[str, Any]] = {  # the seed documents' examples (003), with the fields always sent
    422: {
        "code": "VALIDATION_ERROR",
        "message": "입력 데이터 유효성 검사 실패",
        "field": "sets_count",
        "details": [{"field": "sets_count", "message": "1 이상 20 이하의 값이어야 합니다", "value": 25}],
    },
    429: {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "요청 한도를 초과했습니다. 60초 후 다시 시도하세요",
        "field": None,
        "retry_after_seconds": 60,
    },
    500: {
        "code": "INTERNAL_ERROR",
        "message": "an internal error occurred; quote the support id when reporting it",
        "field": None,
        "support_id": "sup_20250827_001",
    },
}

GUARDED_ERRORS = (401, 403, 429)
"""what the API-key guard may answer on any protected route (429 only when rate limits are on)"""


def error_responses(*codes: int, guarded: bool = True) -> dict[int, ResponseSpec]:
    """The ``responses=`` of a route: each code in ``codes`` (plus the guard's 401/403/429 when ``guarded``,
    and 400, 500 and 503, which any route may answer) documented with the one error body. 400 is always there
    so that Litestar's own description of a validation failure (another body, which this API never sends:
    validation failures are 422 with the error body) is replaced."""
    every = set(codes) | {400, 500, 503} | (set(GUARDED_ERRORS) if guarded else set())
    out: dict[int, ResponseSpec] = {}
    for code in sorted(every):
        example = _ERROR_EXAMPLES.get(code)
        out[code] = ResponseSpec(
            data_container=ErrorBody,
            description=_ERROR_DESCRIPTIONS.get(code, "Error"),
            generate_examples=False,
            examples=[
                Example(
                    summary=example["code"],
                    value={
                        "status": "error",
                        "error": example,
                        "timestamp": "2025-08-27T14:30:00.000Z",
                        "request_id": "req_20250827_001",
                    },
                )
            ]
            if example
            else None,
        )
    return out


def _is_array(schema: Schema) -> bool:
    return schema.type == OpenAPIType.ARRAY or any(
        isinstance(one, Schema) and one.type == OpenAPIType.ARRAY for one in schema.one_of or ()
    )


def _mend(schema: Schema) -> None:
    """Two slips of Litestar 2.25's schemas of pydantic fields: a list's ``min_length``/``max_length`` become
    ``minLength``/``maxLength`` (string keywords, so the list size was not documented), and ``float | int``
    becomes ``oneOf: [number, integer]``, which no integer satisfies (an integer is also a number)."""
    if _is_array(schema) and (schema.min_length is not None or schema.max_length is not None):
        schema.min_items, schema.max_items = schema.min_length, schema.max_length
        schema.min_length = schema.max_length = None
    if schema.one_of:
        kinds = {one.type for one in schema.one_of if isinstance(one, Schema)}
        if OpenAPIType.NUMBER in kinds and OpenAPIType.INTEGER in kinds:
            schema.one_of = [o for o in schema.one_of if not (isinstance(o, Schema) and o.type == OpenAPIType.INTEGER)]
    for child in (*(schema.one_of or ()), schema.items, schema.additional_properties):
        if isinstance(child, Schema):
            _mend(child)


class ContractSchemaPlugin(PydanticSchemaPlugin):
    """Litestar's pydantic schema plugin, plus what it leaves out of a model's schema: ``additionalProperties:
    false`` for a model that forbids extra fields, and the model's ``json_schema_extra`` (model-level rules such
    as "features or records, not both", written as if/then/else, which openapi-python-client reads past, and the
    seed documents' examples), so that the document states what the server validates. Registered in ``api.app``
    (the default pydantic init and DI plugins are still added); ``_mend`` fixes two slips in its field schemas."""

    @classmethod
    def for_pydantic_model(cls, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:  # type: ignore[override]
        schema = super().for_pydantic_model(field_definition, schema_creator)
        for prop in (schema.properties or {}).values():
            if isinstance(prop, Schema):
                _mend(prop)
        config = field_definition.annotation.model_config
        if config.get("extra") == "forbid" and schema.additional_properties is None:
            schema.additional_properties = False
        extra = config.get("json_schema_extra")
        if isinstance(extra, dict):
            aliases = Schema.field_aliases()
            for key, value in extra.items():
                setattr(schema, aliases.get(key, key), value)
        return schema
