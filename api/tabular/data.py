"""``/v1/ml/data``: ingest time-stamped records (JSON batch or CSV) and summarise a period."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_201_CREATED
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.security import api_key_guard
from api.tabular.training import period_bounds
from infra.tabular.record_validation import csv_rows, validate_records
from infra.tabular.records import insert_records, summary
from producers.publisher import EventPublisher
from schemas.common import iso, new_id
from schemas.data import CHUNK, MAX_BATCH, RECORDS_BATCH, RecordsBatch
from schemas.envelope import Envelope
from schemas.errors import ApiError
from schemas.tabular import DataPeriod, DataSummary, DatePeriod, RecordsAccepted


async def _rows(request: Request[Any, Any, Any]) -> tuple[list[Any], str]:
    ctype = request.headers.get("content-type", "")
    if "multipart/form-data" in ctype:
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise ApiError(422, "VALIDATION_ERROR", "upload the CSV as the form field 'file'", field="file")
        text = (await upload.read()).decode("utf-8-sig")
        return _csv(text), str(form.get("source") or getattr(upload, "filename", "") or "csv-upload")
    body = await request.body()
    if "csv" in ctype:
        return _csv(body.decode("utf-8-sig")), "csv-upload"
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise ApiError(400, "INVALID_JSON", f"the request body is not valid JSON: {exc}") from exc
    if isinstance(payload, dict) and isinstance(payload.get("records"), list):
        return payload["records"], str(payload.get("source") or "api")
    if isinstance(payload, list):
        return payload, "api"
    raise ApiError(422, "VALIDATION_ERROR", 'send {"records": [...]} as JSON, or a CSV file', field="records")


def _csv(text: str) -> list[Any]:
    try:
        return csv_rows(text)
    except ValueError as exc:
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
        records, errors = validate_records(rows)
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
