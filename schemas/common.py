"""Small shared types: UTC timestamps and ids."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, PlainSerializer


def utcnow() -> datetime:
    """Now in UTC, to the millisecond (what BSON dates and the ISO wire form keep)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(dt: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` and millisecond precision."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[AwareDatetime, PlainSerializer(iso, return_type=str, when_used="json")]
"""A timezone-aware datetime that serialises as ISO 8601 UTC with ``Z``."""


def new_id(prefix: str, nbytes: int = 6) -> str:
    """``job_9f2c1a0b3e4d`` style ids: short, url-safe, unguessable enough for entity ids."""
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def parse_utc(value: datetime | str | None) -> datetime | None:
    """A datetime from a payload field (a datetime, or ISO 8601 text as events carry it), in UTC."""
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
