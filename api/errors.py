"""The one error body for every API family (the one error type is ``schemas.errors.ApiError``):
``{"status":"error","error":{"code","message","field"},"timestamp","request_id"}``
(``details`` for validation errors, ``retry_after_seconds`` for 429, ``support_id`` for 500)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from producers.publisher import BrokerUnavailable
from schemas.common import iso, utcnow
from schemas.errors import ApiError

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
