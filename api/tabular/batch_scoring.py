"""``/v1/ml/predict/batch``: batch scoring jobs for sets too large for one request. A data period (records already
ingested) or an uploaded file (CSV or JSON lines, stored in GridFS before the 202) is scored in chunks by a
training worker with the production model or a named one, on the job platform (lease, retry, cancel); the scores
download as JSON lines or CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Annotated, Any

from bson import ObjectId
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.jobs import cancel, estimate_minutes, find_job, of_kind, status_fields, submit
from api.registry import find_model
from api.security import api_key_guard
from api.tabular.training import no_records_error, period_bounds
from infra import artifacts, mongo
from infra.tabular.records import count_records
from ml.tabular.score_files import read_rows
from producers.publisher import EventPublisher
from schemas import deploy
from schemas.batch_scoring import (
    MAX_UPLOAD_BYTES,
    BatchAccepted,
    BatchCancelRequested,
    BatchJob,
    BatchJobs,
    BatchScoreOptions,
    BatchScoreRequest,
    BatchScoringSpec,
    FileFormat,
)
from schemas.common import new_id, parameters_schema
from schemas.errors import ApiError, validation_error
from schemas.tabular import DataPeriod

PATH = "/v1/ml/predict/batch"
DEFAULT_MINUTES_PER_RECORD = 2e-7
"""before the first completed job: ~80k records/s (measured on this class of machine, LightGBM, 100k records)"""
RESULTS = "scores.jsonl"
CSV_COLUMNS = {
    "data_period": ["record", "timestamp", "score", "label", "actual_label"],
    "file": ["row", "record_id", "score", "label"],
}


def _request_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body and the multipart form, from the models the handler validates them with."""
    options = parameters_schema(BatchScoreOptions)
    period = parameters_schema(DataPeriod) | {"description": "start_date <= end_date; the period must hold records"}
    body = {
        **options,
        "description": "score the records of a period already ingested",
        "properties": {"data_period": period, **options["properties"]},
        "required": ["data_period", *options.get("required", [])],
        "examples": [{"data_period": {"start_date": "2025-10-01", "end_date": "2025-10-31"}}],
    }
    fields = {  # a form field is text or absent, never null
        name: next((branch for branch in prop.pop("anyOf", []) if branch.get("type") != "null"), {}) | prop
        for name, prop in parameters_schema(BatchScoreOptions)["properties"].items()
    }
    form = {
        **options,
        "description": "score an uploaded file",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "CSV (header line) or JSON lines"},
            "format": {"enum": ["csv", "jsonl"], "description": "default: jsonl for .jsonl/.ndjson names, else csv"},
            **fields,
        },
        "required": ["file"],
    }
    return body, form


@dataclass
class BatchOperation(Operation):
    """Documents the two bodies the route reads by hand: JSON (a data period) or a multipart file upload."""

    def __post_init__(self) -> None:
        body, form = _request_schemas()
        self.request_body = RequestBody(
            required=True,
            description=(BatchScoreRequest.__doc__ or "").strip(),
            content={
                "application/json": OpenAPIMediaType(schema=body),  # type: ignore[arg-type]
                "multipart/form-data": OpenAPIMediaType(schema=form),  # type: ignore[arg-type]
            },
        )


async def _model(db: AsyncDatabase, model_id: str | None) -> dict[str, Any]:
    """The named tabular model, or the one in production now."""
    if model_id is None:
        state = await db[mongo.DEPLOYMENTS].find_one({"_id": deploy.FAMILY}, {"production": 1})
        model_id = (state or {}).get("production")
        if model_id is None:
            raise ApiError(
                409,
                "NO_PRODUCTION_MODEL",
                "no model is in production; name one with model_id or promote one with POST /v1/ml/deploy/production",
            )
    return await find_model(db, model_id, "tabular", what="fraud/anomaly model")


def _upload_format(upload: UploadFile, given: Any) -> FileFormat:
    fmt = str(given or "").lower() or ("jsonl" if upload.filename.lower().endswith((".jsonl", ".ndjson")) else "csv")
    if fmt not in ("csv", "jsonl"):
        raise ApiError(422, "VALIDATION_ERROR", "format must be csv or jsonl", field="format")
    return fmt  # type: ignore[return-value]


async def _form_request(request: Request[Any, Any, Any]) -> tuple[dict[str, Any], UploadFile, FileFormat]:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "VALIDATION_ERROR", "upload the records as the form field 'file'", field="file")
    fields: dict[str, Any] = {}
    for name in ("model_id", "chunk_records", "max_records_per_second"):
        if form.get(name) not in (None, ""):
            fields[name] = form.get(name)
    return fields, upload, _upload_format(upload, form.get("format"))


def batch_job(doc: dict[str, Any]) -> BatchJob:
    spec, figures = doc.get("spec") or {}, doc.get("figures") or {}
    done = doc["status"] == "completed"
    scored = (doc.get("metrics") or {}).get("records_scored") if done else figures.get("records_scored")
    return BatchJob(
        **status_fields(doc),
        attempts=doc.get("attempts"),
        source=spec.get("source"),
        data_period=spec.get("data_period"),
        input_filename=spec.get("input_filename"),
        record_count=doc.get("record_count"),
        records_scored=scored or 0,
        records_per_second=((doc.get("metrics") if done else figures) or {}).get("records_per_second"),
        cancel_requested=bool(doc.get("cancel_requested")),
        results={fmt: f"{PATH}/{doc['job_id']}/results?format={fmt}" for fmt in ("jsonl", "csv")} if done else None,
    )


class BatchScoringController(Controller):
    path = PATH
    guards = [api_key_guard]
    tags = ["ml: serving"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Score a data period or an uploaded file as a job",
        responses=error_responses(400, 404, 409, 413, 422),
        operation_class=BatchOperation,
        request_max_body_size=MAX_UPLOAD_BYTES,
    )
    async def submit_batch(
        self, request: Request[Any, Any, Any], db: AsyncDatabase, publisher: EventPublisher
    ) -> BatchAccepted:
        job_id = new_id("batch")
        ctype = request.headers.get("content-type", "")
        upload: UploadFile | None = None
        if "multipart/form-data" in ctype:
            fields, upload, fmt = await _form_request(request)
        else:
            try:
                fields = json.loads(await request.body() or b"null")
            except json.JSONDecodeError as exc:
                raise ApiError(400, "INVALID_JSON", f"the request body is not valid JSON: {exc}") from exc
            if not isinstance(fields, dict):
                raise ApiError(422, "VALIDATION_ERROR", "send a JSON object with data_period, or a file upload")
        try:
            body = (BatchScoreRequest if upload is None else BatchScoreOptions).model_validate(fields)
        except ValidationError as exc:
            raise validation_error(exc) from exc
        model = await _model(db, body.model_id)
        spec = BatchScoringSpec(
            source="file" if upload else "data_period",
            model_id=model["model_id"],
            chunk_records=body.chunk_records,
            max_records_per_second=body.max_records_per_second,
        )
        if isinstance(body, BatchScoreRequest):
            start, end = period_bounds(body.data_period)
            count = await count_records(db, start, end)
            if count == 0:
                raise await no_records_error(db, body.data_period)
            spec.data_period = body.data_period
        else:
            assert upload is not None
            data = await upload.read()
            try:
                count = sum(1 for _ in read_rows(data, fmt))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(422, "VALIDATION_ERROR", f"the file cannot be scored: {exc}", field="file") from exc
            if count == 0:
                raise ApiError(422, "VALIDATION_ERROR", "the file holds no records", field="file")
            file_id = await artifacts.store(
                db, f"{job_id}.input.{fmt}", data, {"kind": "job_input", "job_id": job_id, "format": fmt}
            )
            spec.input_file_id, spec.input_format, spec.input_filename = str(file_id), fmt, upload.filename
        estimate = await estimate_minutes(
            db,
            "tabular",
            model["model_type"],
            count,
            unit_field="record_count",
            kind="score",
            default_minutes_per_unit=DEFAULT_MINUTES_PER_RECORD,
        )
        try:
            command = await submit(
                request,
                publisher,
                db,
                domain="tabular",
                kind="score",
                job_id=job_id,
                model_type=model["model_type"],
                estimated_minutes=estimate,
                spec=spec,
                record_count=count,
            )
        except BaseException:
            if spec.input_file_id is not None:  # not accepted: the upload goes with it
                await artifacts.delete(db, ObjectId(spec.input_file_id))
            raise
        return BatchAccepted(
            job_id=job_id,
            status="started",
            model_id=spec.model_id,
            model_type=model["model_type"],
            source=spec.source,
            record_count=count,
            estimated_duration_minutes=command.estimated_duration_minutes,
            submitted_at=command.submitted_at,
            status_url=f"{PATH}/{job_id}",
            results_url=f"{PATH}/{job_id}/results",
        )

    @get("/", summary="Batch scoring jobs, newest first", responses=error_responses(422))
    async def list_batches(self, db: AsyncDatabase, limit: Annotated[int, Parameter(ge=1, le=100)] = 20) -> BatchJobs:
        query = {"domain": "tabular", **of_kind("score")}
        items = [batch_job(d) async for d in db[mongo.JOBS].find(query).sort("submitted_at", -1).limit(limit)]
        return BatchJobs(jobs=items, count=len(items))

    @get("/{job_id:str}", summary="A batch scoring job: status, progress, results", responses=error_responses(404, 422))
    async def batch_status(self, job_id: str, db: AsyncDatabase) -> BatchJob:
        return batch_job(await find_job(db, job_id, "tabular", kind="score"))

    @get(
        "/{job_id:str}/results",
        summary="Download the scores (JSON lines or CSV)",
        responses=error_responses(404, 409, 422),
        media_type="application/x-ndjson",
    )
    async def batch_results(
        self,
        job_id: str,
        db: AsyncDatabase,
        format: Annotated[FileFormat, Parameter(description="jsonl (default) or csv")] = "jsonl",  # noqa: A002
    ) -> Response[bytes]:
        doc = await find_job(db, job_id, "tabular", kind="score")
        if doc["status"] != "completed":
            raise ApiError(409, "JOB_NOT_COMPLETED", f"job {job_id} is {doc['status']}; results exist once completed")
        data = await artifacts.read(db, doc["result"]["files"][RESULTS]["file_id"])
        name = f"{job_id}-scores.{format}"
        headers = {"content-disposition": f'attachment; filename="{name}"'}
        if format == "jsonl":
            return Response(data, media_type="application/x-ndjson", headers=headers)
        columns = CSV_COLUMNS[(doc.get("spec") or {}).get("source", "data_period")]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for line in data.splitlines():
            row = json.loads(line)
            writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
        return Response(out.getvalue().encode(), media_type="text/csv", headers=headers)

    @post(
        "/{job_id:str}/cancel",
        status_code=HTTP_202_ACCEPTED,
        summary="Cancel a batch scoring job",
        responses=error_responses(404, 409, 422),
    )
    async def cancel_batch(
        self, request: Request[Any, Any, Any], job_id: str, db: AsyncDatabase, publisher: EventPublisher
    ) -> BatchCancelRequested:
        doc = await find_job(db, job_id, "tabular", kind="score")
        env = await cancel(request, publisher, db, doc)
        return BatchCancelRequested(job_id=job_id, status=doc["status"], cancel_requested=True, updated_at=env.time)
