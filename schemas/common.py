"""Small shared types: UTC timestamps and ids."""

from __future__ import annotations

import functools
import re
import secrets
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer


def utcnow() -> datetime:
    """Now in UTC, to the millisecond (what BSON dates and the ISO wire form keep)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@functools.lru_cache(maxsize=256)
def iso(dt: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` and millisecond precision. Cached: the events of one batch share their
    times (a 1,000-record prediction formats the same two instants 2,000 times)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[AwareDatetime, PlainSerializer(iso, return_type=str, when_used="json")]
"""A timezone-aware datetime that serialises as ISO 8601 UTC with ``Z``."""


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date_only(value: Any) -> Any:
    """A date as JSON carries it, ``YYYY-MM-DD`` text, and nothing else: pydantic's lax mode would also take a
    number (epoch seconds: ``0`` is 1970-01-01), ``"0"`` or a date-time text, which ``format: date`` refuses.
    A ``date`` object (built in Python) passes through."""
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        return value
    raise ValueError("expected a date as YYYY-MM-DD text (format: date)")


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]
"""A calendar date given as ``YYYY-MM-DD`` text (``format: date``), strictly: what the schema documents."""


def new_id(prefix: str, nbytes: int = 6) -> str:
    """``job_9f2c1a0b3e4d`` style ids: short, url-safe, unguessable enough for entity ids."""
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def parse_utc(value: datetime | str | None) -> datetime | None:
    """A datetime from a payload field (a datetime, or ISO 8601 text as events carry it), in UTC."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class ComponentHealth(BaseModel):
    """One dependency measured by a health check (database, broker): a real round trip on every call."""

    status: str = Field(description="healthy or unhealthy")
    response_time_ms: float = Field(description="duration of the check (ping) in ms")
    last_check: str = Field(description="when the check ran, ISO 8601 UTC")
    error: str | None = Field(description="why the check failed (exception class, 'no answer'); null if healthy")


class KubernetesHealth(BaseModel):
    """The Kubernetes API server, when ``MODELBUS_KUBECONFIG`` is set."""

    status: str = Field(description="not_configured (no kubeconfig), healthy or unhealthy")
    version: str | None = Field(None, description="the API server's git version when it answered")
    error: str | None = Field(None, description="why the cluster did not answer")


class WandbHealth(BaseModel):
    """Weights & Biases (optional; its servers are not called by a health check)."""

    status: str = Field(description="not_installed, not_configured (no WANDB_API_KEY: logged offline) or configured")
    installed: str | None = Field(None, description="version of the installed wandb package")
    mode: str | None = Field(None, description="online (key set) or offline")


class HealthComponents(BaseModel):
    """The status of each component of ``GET /api/v1/health``."""

    api: str
    database: str
    kafka: str
    kubernetes: str
    wandb: str


class HealthDetails(BaseModel):
    """The measurement behind each component status."""

    database: ComponentHealth
    kafka: ComponentHealth
    kubernetes: KubernetesHealth
    wandb: WandbHealth


class Health(BaseModel):
    """``GET /api/v1/health`` (seed 004): 200 when the database and Kafka answer, 503 otherwise."""

    status: str = Field(description="healthy when the database and Kafka answer, else unhealthy")
    components: HealthComponents
    version: str = Field(description="API version")
    uptime: str = Field(description="time since the API started, e.g. 3h05m12s")
    details: HealthDetails


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine code, a message for people, the request field at fault (or null).
    Some errors add fields: ``details`` (every validation problem), ``retry_after_seconds`` (429),
    ``support_id`` (500), ``valid_values``, ``required_scope`` and the like."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    code: str = Field(description="machine-readable error code, e.g. VALIDATION_ERROR, MODEL_NOT_FOUND")
    message: str = Field(description="human-readable explanation")
    field: str | None = Field(None, description="the request field at fault, or null (always sent)")


class ErrorBody(BaseModel):
    """The one error body of every API family (every 4xx and 5xx answer)."""

    status: Literal["error"] = "error"
    error: ErrorDetail
    timestamp: str = Field(description="when the error was answered, ISO 8601 UTC")
    request_id: str = Field(description="the request id, also in the X-Request-ID header")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "error",
                    "error": {
                        "code": "INVALID_MACHINE_TYPE",
                        "message": "올바른 호기를 선택하세요. 가능한 값: 1호기, 2호기, 3호기",
                        "field": "machine_type",
                    },
                    "timestamp": "2025-08-27T14:30:00.000Z",
                    "request_id": "req_20250827_001",
                }
            ]
        }
    )


_BOUNDS = (("gt", "exclusiveMinimum"), ("ge", "minimum"), ("lt", "exclusiveMaximum"), ("le", "maximum"))


def document_zero_bounds(namespace: dict[str, Any]) -> None:
    """Litestar 2.25 leaves a bound of zero (``ge=0``, ``gt=0``…: a falsy value) and the ``pattern`` of an optional
    text field out of ``/openapi.json``; copy them, for the pydantic models defined in ``namespace`` (a module's
    ``globals()``), into their fields' ``json_schema_extra``, which it does carry over, so the document shows every
    bound and pattern the models validate."""
    for obj in list(namespace.values()):
        if not (isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == namespace["__name__"]):
            continue
        for field in obj.model_fields.values():
            extra = {
                key: bound
                for meta in field.metadata
                for attr, key in _BOUNDS
                if (bound := getattr(meta, attr, None)) is not None and not isinstance(bound, bool) and bound == 0
            }
            for meta in field.metadata:  # the pattern of an optional text field is left out too
                if isinstance(getattr(meta, "pattern", None), str):
                    extra["pattern"] = meta.pattern
            if extra and isinstance(field.json_schema_extra, dict | None):
                field.json_schema_extra = {**(field.json_schema_extra or {}), **extra}


def parameters_schema(model: type[BaseModel], *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON schema of a parameter model (flat: no ``$defs``), for a per-type rule of ``/openapi.json``;
    ``leave_out``: fields the request may not set (set elsewhere in the request)."""
    schema = model.model_json_schema()
    if "$defs" in schema:
        raise ValueError(f"{model.__name__}: nested models are not supported in a per-type rule")
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    for name in leave_out:
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)
    schema["additionalProperties"] = False if model.model_config.get("extra") == "forbid" else True
    _bounds_as_keywords(schema)
    return schema


_BOUND_KEYWORDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def _bounds_as_keywords(schema: Any) -> None:
    """pydantic writes the bounds of an optional number (``int | None = Field(ge=1)``) as ``ge``/``le``…, which are
    no JSON-schema keywords: write them as ``minimum``/``maximum``…"""
    if isinstance(schema, dict):
        for short, keyword in _BOUND_KEYWORDS.items():
            numeric = schema.get("type") in ("integer", "number")
            if numeric and short in schema and isinstance(schema[short], int | float):
                schema[keyword] = schema.pop(short)
        for value in schema.values():
            _bounds_as_keywords(value)
    elif isinstance(schema, list):
        for value in schema:
            _bounds_as_keywords(value)


def per_type_rules(
    discriminator: str,
    field: str,
    models: dict[str, type[BaseModel]],
    *,
    leave_out: tuple[str, ...] = (),
    wrap: Any = None,
) -> dict[str, Any]:
    """``if``/``then``/``else`` (nested: one level per type, the last type is the final ``else``) stating that
    ``field`` holds the parameters of the type named by ``discriminator``: what the server checks per type
    (a generated client reads past if/then/else). ``wrap(name, schema)`` may adapt each parameter schema."""
    names = list(models)

    def branch(i: int) -> dict[str, Any]:
        schema = parameters_schema(models[names[i]], leave_out=leave_out)
        if wrap is not None:
            schema = wrap(names[i], schema)
        then = {"properties": {field: schema}}
        if i == len(names) - 1:
            return then
        return {
            "if": {"required": [discriminator], "properties": {discriminator: {"const": names[i]}}},
            "then": then,
            "else": branch(i + 1),
        }

    return branch(0)


def _json_number(value: Any) -> Any:
    """A number field of a request body takes a JSON number only: pydantic's lax mode would also take ``true`` (as 1)
    or numeric text (``"5"``), which the schema's ``integer``/``number`` refuses. A whole float (``5.0``, JSON's
    same number as 5) is still an integer."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("expected a JSON number")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_number)]
"""An integer of a request body, as the schema states it (no booleans, no text)."""
JsonFloat = Annotated[float, BeforeValidator(_json_number)]
"""A number of a request body, as the schema states it (no booleans, no text)."""
