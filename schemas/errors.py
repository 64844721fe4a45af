"""The one error type of modelbus: raised by a route handler, a serving handler or a validator, answered to an
HTTP client as the one error body (``api.errors``) and sent across request/reply as ``RpcError``; and the one
formatter of pydantic validation errors."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schemas.rpc import RpcError


class ApiError(Exception):
    """An answer that is not a success: HTTP status, a stable code, a message a person can read, the field at
    fault, and any extra fields of the error body."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status_code, self.code, self.message, self.field = status_code, code, message, field
        self.headers = headers or {}
        self.extra = extra

    def to_rpc(self) -> RpcError:
        return RpcError(
            code=self.code, message=self.message, status=self.status_code, field=self.field, extra=self.extra
        )

    @classmethod
    def from_rpc(cls, error: RpcError) -> ApiError:
        return cls(error.status, error.code, error.message, field=error.field, **error.extra)


def validation_details(exc: ValidationError, prefix: str | None = None) -> list[dict[str, Any]]:
    """One entry per problem: the dotted field (under ``prefix``), pydantic's message and the offending value when
    it is a scalar."""
    details = []
    for err in exc.errors():
        field = ".".join([*([prefix] if prefix else []), *(str(p) for p in err.get("loc", ()))]) or prefix
        value = err.get("input")
        scalar = isinstance(value, int | float | str)
        details.append({"field": field, "message": err["msg"], **({"value": value} if scalar else {})})
    return details


def validation_error(exc: ValidationError, prefix: str | None = None) -> ApiError:
    """422 ``VALIDATION_ERROR`` listing every problem (``details``), the first one's field as ``field``."""
    details = validation_details(exc, prefix)
    return ApiError(
        422,
        "VALIDATION_ERROR",
        "; ".join(f"{d['field']}: {d['message']}" if d["field"] else str(d["message"]) for d in details),
        field=details[0]["field"] if details else prefix,
        details=details,
    )
