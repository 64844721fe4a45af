"""The event envelope: CloudEvents 1.0 attributes plus correlation, causation, schema version
and a per-entity ``sequence`` (the CloudEvents sequence extension) that projections use to
ignore repeated or older events. Unknown attributes and payload fields are kept."""

from __future__ import annotations

import functools
import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.common import UtcDatetime, utcnow

P = TypeVar("P", bound=BaseModel)


class Payload(BaseModel):
    """Base of every command and event payload: versioned, unknown fields kept."""

    model_config = ConfigDict(extra="allow")


class Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: UtcDatetime = Field(default_factory=utcnow)
    subject: str
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    correlationid: str | None = None
    causationid: str | None = None
    schemaversion: int = 1
    sequence: int | None = Field(
        None, description="per-entity order; None for commutative flag events (e.g. cancel requested)"
    )

    @classmethod
    def wrap(
        cls,
        type_: str,
        subject: str,
        payload: BaseModel,
        *,
        source: str,
        sequence: int | None = None,
        cause: Envelope | None = None,
        correlationid: str | None = None,
    ) -> Envelope:
        """A new event about ``subject``; ``cause`` sets causation and carries the correlation id."""
        return cls(
            type=type_,
            subject=subject,
            source=source,
            data=payload.model_dump(mode="json"),
            sequence=sequence,
            causationid=cause.id if cause else None,
            correlationid=correlationid or (cause.correlationid if cause else None) or subject,
            schemaversion=int(getattr(payload, "schema_version", 1)),
        )

    @classmethod
    def wrap_many(
        cls, type_: str, model: type[BaseModel], payloads: list[dict[str, Any]], *, subject: str, source: str
    ) -> list[Envelope]:
        """One event per payload (each validated as ``model``; ``subject`` names the payload field that is the
        event's subject and correlation), in two validations of the whole list: a batch of 1,000 served
        predictions costs half of 1,000 ``wrap`` calls."""
        data = _list_adapter(model).dump_python(_list_adapter(model).validate_python(payloads), mode="json")
        now = utcnow()
        version = int(getattr(model, "schema_version", 1))
        return _ENVELOPES.validate_python(
            [
                {
                    "id": str(uuid.uuid4()),
                    "time": now,
                    "type": type_,
                    "subject": item[subject],
                    "source": source,
                    "data": item,
                    "correlationid": item[subject],
                    "schemaversion": version,
                }
                for item in data
            ]
        )

    def payload(self, model: type[P]) -> P:
        return model.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)


_ENVELOPES = TypeAdapter(list[Envelope])


@functools.cache
def _list_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]
