"""``/v1/ml/train``: submit, poll, list and cancel training jobs (seed 000)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses
from api.jobs import cancel as cancel_job
from api.jobs import estimate_minutes, find_job, of_kind, status_fields, submit
from api.security import api_key_guard
from infra import mongo
from infra.tabular.records import count_records, extent
from producers.publisher import EventPublisher
from schemas.common import iso
from schemas.errors import ApiError, validation_error
from schemas.tabular import (
    CancelRequested,
    DataPeriod,
    JobStatus,
    TabularJobSpec,
    TrainAccepted,
    TrainingHistory,
    TrainingJob,
    TrainRequest,
)

# Minutes per record when no past job of the type exists (measured on this class of machine).
DEFAULT_MINUTES_PER_RECORD = {"lightgbm": 2e-6, "isolation_forest": 4e-6}


def job_status(doc: dict[str, Any]) -> JobStatus:
    return JobStatus(**status_fields(doc))


def training_job(doc: dict[str, Any]) -> TrainingJob:
    spec, result = doc.get("spec", {}), doc.get("result") or {}
    return TrainingJob(
        **status_fields(doc),
        attempts=doc.get("attempts"),
        record_count=doc.get("record_count"),
        data_period=spec.get("data_period"),
        hyperparameters=spec.get("hyperparameters"),
        estimated_duration_minutes=doc.get("estimated_duration_minutes"),
        baseline=result.get("baseline"),
        holdout=result.get("holdout"),
    )


def period_bounds(period: DataPeriod) -> tuple[datetime, datetime]:
    start = datetime.combine(period.start_date, time.min, UTC)
    return start, datetime.combine(period.end_date, time.min, UTC) + timedelta(days=1)


class TrainingController(Controller):
    path = "/v1/ml/train"
    guards = [api_key_guard]
    tags = ["ml: training"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Start training (Isolation Forest or LightGBM)",
        responses=error_responses(400, 422),
    )
    async def train(
        self, request: Request[Any, Any, Any], data: TrainRequest, db: AsyncDatabase, publisher: EventPublisher
    ) -> TrainAccepted:
        try:
            params = data.params()
        except ValidationError as exc:
            raise validation_error(exc, "hyperparameters") from exc
        start, end = period_bounds(data.data_period)
        records = await count_records(db, start, end)
        if records == 0:
            raise await no_records_error(db, data.data_period)
        estimate = await estimate_minutes(
            db,
            "tabular",
            data.model_type,
            records,
            unit_field="record_count",
            default_minutes_per_unit=DEFAULT_MINUTES_PER_RECORD.get(data.model_type, 5e-6),
        )
        command = await submit(
            request,
            publisher,
            db,
            domain="tabular",
            model_type=data.model_type,
            estimated_minutes=estimate,
            spec=TabularJobSpec(data_period=data.data_period, hyperparameters=params.model_dump()),
            record_count=records,
        )
        return TrainAccepted(
            job_id=command.job_id,
            status="started",
            model_type=data.model_type,
            estimated_duration_minutes=command.estimated_duration_minutes,
            started_at=command.submitted_at,
        )

    @get("/status/{job_id:str}", summary="Training job status", responses=error_responses(404, 422))
    async def status(self, job_id: str, db: AsyncDatabase) -> JobStatus:
        doc = await find_job(db, job_id, "tabular")
        return job_status(doc)

    @get("/history", summary="Training jobs, newest first", responses=error_responses(422))
    async def history(self, db: AsyncDatabase, limit: Annotated[int, Parameter(ge=1, le=100)] = 10) -> TrainingHistory:
        cursor = db[mongo.JOBS].find({"domain": "tabular", **of_kind("train")}).sort("submitted_at", -1).limit(limit)
        items = [training_job(doc) async for doc in cursor]
        return TrainingHistory(jobs=items, count=len(items), limit=limit)

    @post(
        "/{job_id:str}/cancel",
        status_code=HTTP_202_ACCEPTED,
        summary="Cancel a training job",
        responses=error_responses(404, 409, 422),
    )
    async def cancel(
        self, request: Request[Any, Any, Any], job_id: str, db: AsyncDatabase, publisher: EventPublisher
    ) -> CancelRequested:
        doc = await find_job(db, job_id, "tabular")
        env = await cancel_job(request, publisher, db, doc)
        return CancelRequested(job_id=job_id, status=doc["status"], cancel_requested=True, updated_at=iso(env.time))


async def no_records_error(db: AsyncDatabase, period: DataPeriod) -> ApiError:
    total, first, last = await extent(db)
    where = (
        f"; {total} records exist between {first:%Y-%m-%d} and {last:%Y-%m-%d}"
        if first and last
        else "; no records have been ingested yet (POST /v1/ml/data or run `modelbus demo`)"
    )
    return ApiError(
        422,
        "NO_DATA_IN_PERIOD",
        f"no records between {period.start_date} and {period.end_date}{where}",
        field="data_period",
        records_total=total,
        records_first=first.isoformat() if first else None,
        records_last=last.isoformat() if last else None,
    )
