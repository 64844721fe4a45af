"""``/v1/ml/data``: ingest time-stamped records (JSON batch or CSV) and summarise a period."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from litestar import Controller, Request, get, post
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody
from litestar.status_codes import HTTP_201_CREATED
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.security import api_key_guard
from api.tabular.training import period_bounds
from infra.tabular.record_validation import csv_rows, validate_record
from infra.tabular.records import insert_records, summary
from producers.publisher import EventPublisher
from schemas.common import iso, new_id
from schemas.data import CHUNK, MAX_BATCH, RECORDS_BATCH, RecordsBatch
from schemas.envelope import Envelope
from schemas.errors import ApiError
from schemas.tabular import DataPeriod, DataSummary, DatePeriod, RecordsAccepted

# -- the request body as /openapi.json documents it (the handler reads it by hand: JSON, CSV or a multipart file)

_INT64 = (-(2**63), 2**63 - 1)
_NUMERIC_TEXT = r"^([+-]?[0-9]{1,15}(\.[0-9]{0,15})?|true|false)$"

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "one time-stamped transaction (validate_record): model inputs under features",
    "required": ["timestamp", "features"],
    "additionalProperties": False,
    "properties": {
        "timestamp": {
            "description": "ISO 8601 (UTC when it has no zone; a date alone is its midnight) or epoch seconds",
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": -62135596800, "maximum": 253402300799},
            ],
        },
        "features": {
            "type": "object",
            "minProperties": 1,
            "description": "name -> number or boolean (numeric text is read as its number, as in CSV)",
            "additionalProperties": {
                "anyOf": [{"type": "number"}, {"type": "boolean"}, {"type": "string", "pattern": _NUMERIC_TEXT}]
            },
        },
        "label": {"enum": [0, 1, None], "description": "0, 1, or null/absent: unlabelled"},
        "record_id": {"description": "the sender's id of the record: accepted and not stored"},
    },
}
_RECORDS = {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": RECORD_SCHEMA}
_JSON_EXAMPLE = {  # the README's ingest example
    "records": [{"timestamp": "2025-11-20T10:00:00Z", "features": {"amount": 120.5, "hour": 10}, "label": 0}]
}
_CSV_EXAMPLE = "timestamp,amount,hour,label\n2025-11-20T11:00:00Z,80.0,11,0\n"

INGEST_BODY = RequestBody(
    required=True,
    description=(
        f'1 to {MAX_BATCH:,} records, all or nothing. JSON: {{"records": [...], "source": ...}} (other keys '
        "are ignored) or a bare list of records (a body of another media type is read as JSON). CSV: a header row "
        "with a timestamp column, an optional label column (empty cell: unlabelled), every other column a numeric "
        "feature; as a text/csv body or the multipart field 'file' (with an optional 'source' field). The content "
        "of a CSV text is checked by the server (422 with the row), not by this schema."
    ),
    content={
        "application/json": OpenAPIMediaType(
            schema={  # type: ignore[arg-type]  (a JSON schema written out: two forms, not one model)
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["records"],
                        "properties": {
                            "records": _RECORDS,
                            "source": {"description": "where the records come from (stored as text; default 'api')"},
                        },
                    },
                    _RECORDS,
                ]
            },
            examples={"records": Example(summary="one labelled record", value=_JSON_EXAMPLE)},
        ),
        "text/csv": OpenAPIMediaType(
            schema={"type": "string", "description": "CSV text with a header row"},  # type: ignore[arg-type]
            examples={"csv": Example(summary="one labelled record", value=_CSV_EXAMPLE)},
        ),
        "multipart/form-data": OpenAPIMediaType(
            schema={  # type: ignore[arg-type]
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "the CSV file"},
                    "source": {"type": "string", "description": "where the records come from (default: file name)"},
                },
            },
        ),
    },
)


@dataclass
class IngestOperation(Operation):
    """The operation of ``POST /v1/ml/data`` with its request body (Litestar documents none: no ``data``)."""

    def __post_init__(self) -> None:
        self.request_body = INGEST_BODY


def _validated(rows: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``validate_records``, and an epoch or zone beyond the calendar (OverflowError) is an invalid record too;
    integers beyond 64 bits (which BSON cannot hold) are kept as numbers (floats): JSON has one number type."""
    good: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(rows):
        try:
            record = validate_record(raw)
        except (ValueError, TypeError, OverflowError) as exc:
            errors.append({"index": index, "reason": str(exc)})
            continue
        features = record["features"]
        for name, value in features.items():
            if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
                features[name] = float(value)
        good.append(record)
    return good, errors


async def _rows(request: Request[Any, Any, Any]) -> tuple[list[Any], str]:
    ctype = request.headers.get("content-type", "")
    if "multipart/form-data" in ctype:
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise ApiError(422, "VALIDATION_ERROR", "upload the CSV as the form field 'file'", field="file")
        text = _text(await upload.read())
        return _csv(text), str(form.get("source") or getattr(upload, "filename", "") or "csv-upload")
    body = await request.body()
    if "csv" in ctype:
        return _csv(_text(body)), "csv-upload"
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "INVALID_JSON", f"the request body is not valid JSON: {exc}") from exc
    if isinstance(payload, dict) and isinstance(payload.get("records"), list):
        return payload["records"], str(payload.get("source") or "api")
    if isinstance(payload, list):
        return payload, "api"
    raise ApiError(422, "VALIDATION_ERROR", 'send {"records": [...]} as JSON, or a CSV file', field="records")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "INVALID_ENCODING", "send the CSV as UTF-8 text", field="file") from exc


def _csv(text: str) -> list[Any]:
    try:
        return csv_rows(text)
    except (ValueError, csv.Error) as exc:
        raise ApiError(422, "VALIDATION_ERROR", str(exc), field="file") from exc


class DataController(Controller):
    path = "/v1/ml/data"
    guards = [api_key_guard]
    tags = ["ml: data"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Ingest records (JSON batch up to 10,000, or CSV)",
        responses=error_responses(400, 422),
        operation_class=IngestOperation,
    )
    async def ingest(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> RecordsAccepted:
        rows, source = await _rows(request)
        if not rows:
            raise ApiError(422, "VALIDATION_ERROR", "no records in the request", field="records")
        if len(rows) > MAX_BATCH:
            raise ApiError(
                422, "BATCH_TOO_LARGE", f"{len(rows)} records; at most {MAX_BATCH} per batch", field="records"
            )
        records, errors = _validated(rows)
        if errors:
            shown = errors[:50]
            raise ApiError(
                422,
                "INVALID_RECORDS",
                f"{len(errors)} invalid record(s); nothing was stored. First: record {errors[0]['index']}: "
                f"{errors[0]['reason']}",
                field=f"records[{errors[0]['index']}]",
                details=shown,
                invalid_count=len(errors),
            )
        records.sort(key=lambda r: r["timestamp"])
        batch_id = new_id("batch")
        chunks = [records[i : i + CHUNK] for i in range(0, len(records), CHUNK)]
        events = []
        for n, chunk in enumerate(chunks):
            payload = RecordsBatch(
                batch_id=batch_id,
                chunk=n,
                chunks=len(chunks),
                source=source,
                records=[r | {"timestamp": iso(r["timestamp"])} for r in chunk],
            )
            env = Envelope.wrap(
                RECORDS_BATCH, f"{batch_id}:{n}", payload, source="modelbus/api", correlationid=batch_id
            )
            await publisher.publish("data.records", env, key=env.subject)  # on Kafka first
            events.append((env, chunk))
        for env, chunk in events:  # read-your-write; the ingest consumer writes the same block ids (no-op)
            await insert_records(db, chunk, source=source, block_id=env.id)
        return RecordsAccepted(
            batch_id=batch_id,
            accepted=len(records),
            chunks=len(chunks),
            first_timestamp=iso(records[0]["timestamp"]),
            last_timestamp=iso(records[-1]["timestamp"]),
        )

    @get(
        "/summary",
        summary="Record count, label rate, feature names and types for a period",
        description="start_date must not be after end_date (422 VALIDATION_ERROR): a rule across the two "
        "parameters, which the schema does not state.",
        responses=error_responses(422),
    )
    async def data_summary(self, db: AsyncDatabase, start_date: date, end_date: date) -> DataSummary:
        try:
            period = DataPeriod(start_date=start_date, end_date=end_date)
        except ValueError as exc:
            raise ApiError(
                422, "VALIDATION_ERROR", "start_date must not be after end_date", field="start_date"
            ) from exc
        start, end = period_bounds(period)
        out = await summary(db, start, end)
        return DataSummary(
            period=DatePeriod(start_date=str(start_date), end_date=str(end_date)),
            record_count=out["record_count"],
            labelled_count=out["labelled_count"],
            label_rate=out["label_rate"],
            first_timestamp=iso(out["first_timestamp"]) if out["first_timestamp"] else None,
            last_timestamp=iso(out["last_timestamp"]) if out["last_timestamp"] else None,
            features=out["features"],
        )
