"""Lotto 6/45 (seed 003): draws, statistics, backtests, generation, ensemble and member training.

* ``POST /api/draws`` imports one draw or a batch (JSON or CSV, our names or the official ``drwNo`` …
  with a machine column). All or nothing: every bad row is reported with its row (and CSV line), field
  and reason, including rounds that already exist; otherwise each draw is published on ``lotto.draws``
  and projected (read-your-write). ``GET /api/draws`` reads the projection.
* Statistics, backtests, generation and the ensemble are computed by the serving workers (Kafka
  request/reply), which read the draws from MongoDB; the API only validates and forwards.
* ``POST /api/models/train`` publishes a training command exactly like ``/v1/ml/train`` (202 + job id);
  ``GET /api/models/train/{job_id}`` reads the job projection; ``GET /api/models`` the lotto registry.

The machine (호기) is validated here so an unknown one answers 400 ``INVALID_MACHINE_TYPE`` (seed 003)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from api.errors import error_responses, request_id_of
from api.jobs import estimate_minutes, find_job, status_fields, submit
from api.registry import model_fields
from api.security import api_key_guard, principal_of
from api.workers import call_worker
from infra import mongo
from infra.projections import apply_events
from ml.lotto.draws import import_draws
from ml.lotto.params import PARAMS, validate_params
from producers.publisher import EventPublisher
from producers.rpc import RpcClient
from schemas import lotto
from schemas.common import iso, new_id, per_type_rules, utcnow
from schemas.envelope import Envelope
from schemas.errors import ApiError, validation_error
from schemas.lotto import (
    ALGORITHMS,
    DRAW_RECORDED,
    INVALID_MACHINE_MESSAGE,
    MACHINE_LABELS,
    MACHINE_TYPE_FIELD,
    MACHINE_TYPE_PARAM,
    MODEL_TYPES,
    DrawRecorded,
    EnsemblePredictionRequest,
    EnsembleResponse,
    LottoBacktest,
    LottoDraw,
    LottoDrawImport,
    LottoDrawList,
    LottoJobStatus,
    LottoMachineAnalysis,
    LottoModel,
    LottoModelList,
    LottoTrainAccepted,
    LottoTrainRequest,
    PredictionRequest,
    PredictionResponse,
    machine_label,
    parse_machine_type,
)

MAX_DRAWS_PER_IMPORT = 5000
MAX_IMPORT_BYTES = 3 * 2**20  # the parsed batch travels to a worker in one Kafka message
MAX_ERRORS_SHOWN = 1000
DEFAULT_TRAIN_MINUTES = {"pytorch_transformer": 0.2, "sklearn_ensemble": 0.15, "enhanced_predictor": 0.05}


def machine_or_400(value: object, field: str = "machine_type") -> int:
    machine = parse_machine_type(value)
    if machine is None:
        raise ApiError(400, "INVALID_MACHINE_TYPE", INVALID_MACHINE_MESSAGE, field=field, valid_values=MACHINE_LABELS)
    return machine


def _stamp(request: Request[Any, Any, Any], result: lotto.GeneratedSets) -> dict[str, Any]:
    """The seed's response order: request_id, machine_type, predictions, metadata, generated_at."""
    return {"request_id": request_id_of(request), **result.model_dump(), "generated_at": iso(utcnow())}


# ---------------------------------------------------------------------------------------------------------------
# draw import


async def _import_payload(request: Request[Any, Any, Any]) -> tuple[str, Any]:
    """("csv", text) or ("json", object) from a JSON body, a CSV body (text/csv) or a multipart ``file``."""
    ctype = request.headers.get("content-type", "").lower()
    if "multipart/form-data" in ctype:
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise ApiError(422, "VALIDATION_ERROR", "upload the draws as the form field 'file'", field="file")
        raw = await upload.read()
        name = str(getattr(upload, "filename", "") or "").lower()
        fmt = "json" if name.endswith(".json") else "csv"
    else:
        raw = await request.body()
        fmt = "csv" if ("csv" in ctype or ctype.startswith("text/plain")) else "json"
    if len(raw) > MAX_IMPORT_BYTES:
        raise ApiError(
            413, "PAYLOAD_TOO_LARGE", f"{len(raw)} bytes; import at most {MAX_IMPORT_BYTES} bytes per request"
        )
    if not raw.strip():
        raise ApiError(422, "NO_DRAWS", "the request holds no draws", field="draws")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "INVALID_ENCODING", "send the draws as UTF-8 text") from exc
    if fmt == "csv":
        rows = sum(1 for line in text.splitlines() if line.strip()) - 1
        data: Any = text
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiError(400, "INVALID_JSON", f"the request body is not valid JSON: {exc}") from exc
        records = data["draws"] if isinstance(data, dict) and isinstance(data.get("draws"), list) else data
        rows = len(records) if isinstance(records, list) else 1
    if rows > MAX_DRAWS_PER_IMPORT:
        raise ApiError(
            422,
            "BATCH_TOO_LARGE",
            f"{rows} draws; import at most {MAX_DRAWS_PER_IMPORT} per request",
            field="draws",
        )
    return fmt, data


# the request body of POST /api/draws as /openapi.json documents it (the handler reads JSON or CSV by hand)

_NUMBER = {"type": "integer", "minimum": 1, "maximum": 45}
DRAW_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "one draw. The official names are read too: drwNo (round), drwNoDate (date), drwtNo1..drwtNo6 or n1..n6 "
        '(numbers), bnusNo (bonus); numbers may be one text such as "3 5 13 20 21 37", integers may be integer '
        "text, a date may use . or / (2025.08.23). Other fields (totSellamnt…) are ignored. Rules the schema does "
        "not state (422 INVALID_DRAWS, every bad row listed): the bonus is not among the numbers, a round appears "
        "once in the request and is not recorded yet, and a row without machine needs ?machine_type=."
    ),
    "required": ["round", "date", "numbers", "bonus"],
    "properties": {
        "round": {"type": "integer", "minimum": 1, "description": "회차 (drwNo)"},
        "date": {"type": "string", "format": "date", "description": "추첨일 (drwNoDate), YYYY-MM-DD"},
        "numbers": {
            "type": "array",
            "minItems": 6,
            "maxItems": 6,
            "uniqueItems": True,
            "items": _NUMBER,
            "description": "the six numbers, any order",
        },
        "bonus": {**_NUMBER, "description": "보너스 번호 (bnusNo), not among the numbers"},
        "machine": {**MACHINE_TYPE_FIELD, "description": "추첨기 호기: 1호기, 2호기, 3호기 or 1, 2, 3"},
    },
}
_DRAWS = {"type": "array", "minItems": 1, "maxItems": MAX_DRAWS_PER_IMPORT, "items": DRAW_RECORD_SCHEMA}
_DRAW_EXAMPLE = {
    "round": 1201,
    "date": "2025-08-30",
    "numbers": [3, 5, 13, 20, 21, 37],
    "bonus": 17,
    "machine": "1호기",
}
_DRAWS_CSV_EXAMPLE = (
    "drwNo,drwNoDate,drwtNo1,drwtNo2,drwtNo3,drwtNo4,drwtNo5,drwtNo6,bnusNo,machine_type\n"
    "1201,2025-08-30,3,5,13,20,21,37,17,1호기\n"
)
_CSV_TEXT = {"type": "string", "description": "CSV text with a header row (comma, semicolon or tab separated)"}

DRAWS_BODY = RequestBody(
    required=True,
    description=(
        f"1 to {MAX_DRAWS_PER_IMPORT:,} draws, at most {MAX_IMPORT_BYTES // 2**20} MB (413), all or nothing. JSON: "
        'one draw, a list, or {"draws": [...]} (a body of another media type is read as JSON). CSV: the same '
        "field names as columns, as a text/csv (or text/plain) body or the multipart field 'file' (a file named "
        "*.json is read as JSON). The content of a CSV text is checked by the server (422 with row and line), not "
        "by this schema."
    ),
    content={
        "application/json": OpenAPIMediaType(
            schema={  # type: ignore[arg-type]  (a JSON schema written out: three forms, not one model)
                "anyOf": [
                    DRAW_RECORD_SCHEMA,
                    _DRAWS,
                    {"type": "object", "required": ["draws"], "properties": {"draws": _DRAWS}},
                ]
            },
            examples={
                "draw": Example(summary="one draw", value=_DRAW_EXAMPLE),
                "batch": Example(summary="a batch", value={"draws": [_DRAW_EXAMPLE]}),
            },
        ),
        "text/csv": OpenAPIMediaType(
            schema=_CSV_TEXT,  # type: ignore[arg-type]
            examples={"official": Example(summary="official column names", value=_DRAWS_CSV_EXAMPLE)},
        ),
        "text/plain": OpenAPIMediaType(schema=_CSV_TEXT),  # type: ignore[arg-type]
        "multipart/form-data": OpenAPIMediaType(
            schema={  # type: ignore[arg-type]
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary", "description": "CSV, or JSON (*.json)"}},
            },
        ),
    },
)


@dataclass
class DrawsImportOperation(Operation):
    """The operation of ``POST /api/draws`` with its request body (Litestar documents none: no ``data``)."""

    def __post_init__(self) -> None:
        self.request_body = DRAWS_BODY


def _draw_out(doc: dict[str, Any]) -> LottoDraw:
    return LottoDraw(
        round=doc["round"],
        date=doc["date"],
        numbers=doc["numbers"],
        bonus=doc["bonus"],
        machine=doc["machine"],
        machine_type=doc.get("machine_type") or machine_label(doc["machine"]),
        synthetic=bool(doc.get("synthetic", False)),
    )


# ---------------------------------------------------------------------------------------------------------------
# training jobs


def checked_parameters(machine: int, model_type: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The member's parameters with their defaults, validated here (``ml.lotto.params`` imports no torch)."""
    if "machine" in parameters and parameters["machine"] != machine:
        raise ApiError(
            422, "VALIDATION_ERROR", "parameters.machine: set by machine_type; leave it out", field="parameters.machine"
        )
    try:
        return validate_params(model_type, {**parameters, "machine": machine}).model_dump(mode="json")
    except ValidationError as exc:
        raise validation_error(exc, "parameters") from exc
    except ValueError as exc:
        raise ApiError(422, "VALIDATION_ERROR", str(exc), field="model_type") from exc


TRAIN_BODY = Body(schema_extra=per_type_rules("model_type", "parameters", dict(PARAMS), leave_out=("machine",)))
"""the request body of ``POST /api/models/train``: the per-type rules of ``parameters`` are stated here, beside the
models they come from (``schemas`` may not import ``ml``)"""


def lotto_job_status(doc: dict[str, Any]) -> LottoJobStatus:
    spec = doc.get("spec") or {}
    result = doc.get("result") or {}
    return LottoJobStatus(
        **status_fields(doc)
        | {
            "started_at": iso(doc["started_at"]),
            "completed_at": iso(doc["completed_at"]) if doc.get("completed_at") else None,
        },
        machine_type=machine_label(spec["machine"]) if spec.get("machine") in (1, 2, 3) else None,
        holdout=result.get("holdout"),
        baseline=result.get("baseline"),
        baseline_within_ci=result.get("baseline_within_ci"),
        confidence_evidence=result.get("confidence_evidence"),
        draws=result.get("draws", doc.get("record_count")),
        parameters=spec.get("parameters"),
        attempts=doc.get("attempts"),
    )


def _model_out(doc: dict[str, Any]) -> LottoModel:
    lineage = doc.get("lineage") or {}
    fields = model_fields(doc)
    fields.pop("deployed_at")
    return LottoModel(
        **fields,
        machine_type=lineage.get("machine_type"),
        lineage=lineage,
        artifact_sha256=doc.get("artifact_sha256"),
        artifact_bytes=doc.get("artifact_bytes"),
    )


class LottoController(Controller):
    guards = [api_key_guard]
    tags = ["lotto"]

    # -- draws --------------------------------------------------------------------------------------------------
    @post(
        "/api/draws",
        status_code=HTTP_201_CREATED,
        summary="Import draws (one or a batch; JSON or CSV; official drwNo… names with a machine column)",
        description=(
            "JSON: a record, a list, or {\"draws\": [...]}; CSV: Content-Type text/csv (or a multipart 'file'). "
            "Fields: round|drwNo, date|drwNoDate, numbers|n1..n6|drwtNo1..drwtNo6, bonus|bnusNo, "
            "machine|machine_type (1호기, 2호기, 3호기 or 1, 2, 3; ?machine_type= sets a default). "
            "All or nothing: any bad row rejects the batch with every row's errors."
        ),
        responses=error_responses(400, 413, 422),
        operation_class=DrawsImportOperation,
    )
    async def import_draws(
        self,
        request: Request[Any, Any, Any],
        db: AsyncDatabase,
        publisher: EventPublisher,
        machine_type: Annotated[
            str | None,
            Parameter(
                query="machine_type",
                description="default machine for rows without one",
                schema_extra=MACHINE_TYPE_PARAM,
            ),
        ] = None,
    ) -> LottoDrawImport:
        default_machine = machine_or_400(machine_type) if machine_type is not None else None
        fmt, data = await _import_payload(request)
        parsed = await asyncio.to_thread(import_draws, fmt, data, default_machine)
        draws: list[dict[str, Any]] = parsed["draws"]
        errors: list[dict[str, Any]] = list(parsed["errors"])
        if draws:
            existing = await mongo.find_by_ids(
                db[mongo.LOTTO_DRAWS], [str(d["round"]) for d in draws], projection={"_id": 1, "synthetic": 1}
            )
            for draw in draws:
                found = existing.get(str(draw["round"]))
                if found is not None:
                    errors.append(
                        {
                            "row": draw["row"],
                            "line": draw["line"],
                            "field": "round",
                            "reason": f"duplicate round {draw['round']}: already recorded"
                            + (" (synthetic demo draw)" if found.get("synthetic") else ""),
                            "value": draw["round"],
                        }
                    )
        if errors:
            errors = [{k: v for k, v in e.items() if not (k == "line" and v is None)} for e in errors]
            errors.sort(key=lambda e: (e.get("row") if e.get("row") is not None else -1, e.get("field") or ""))
            rows = sorted({e.get("row") for e in errors if e.get("row") is not None})
            first = errors[0]
            raise ApiError(
                422,
                "INVALID_DRAWS",
                f"{len(rows) or 1} of {parsed['rows_total']} row(s) rejected; nothing was imported. "
                f"First: row {first.get('row')}: {first.get('field')}: {first.get('reason')}",
                field=f"draws[{first.get('row')}].{first.get('field')}",
                details=errors[:MAX_ERRORS_SHOWN],
                invalid_count=len(rows),
                rows_total=parsed["rows_total"],
            )
        if not draws:
            raise ApiError(422, "NO_DRAWS", "the request holds no draws", field="draws")
        principal = principal_of(request)
        import_id = new_id("import")
        events = [
            Envelope.wrap(
                DRAW_RECORDED,
                str(d["round"]),
                DrawRecorded(
                    round=d["round"],
                    date=d["date"],
                    numbers=d["numbers"],
                    bonus=d["bonus"],
                    machine=d["machine"],
                    source="api",
                    import_id=import_id,
                    imported_by=principal.key_id if principal else None,
                ),
                source="modelbus/api",
                sequence=1,
                correlationid=import_id,
            )
            for d in draws
        ]
        await asyncio.gather(*(publisher.publish("lotto.draws", env) for env in events))  # on Kafka first
        await apply_events(db, events)  # read-your-write; the projector applies the same events (no-op)
        by_machine = {label: 0 for label in MACHINE_LABELS}
        for d in draws:
            by_machine[machine_label(d["machine"])] += 1
        return LottoDrawImport(
            import_id=import_id,
            imported=len(draws),
            first_round=draws[0]["round"],
            last_round=draws[-1]["round"],
            by_machine=by_machine,
            synthetic=False,
            recorded_at=iso(events[0].time),
        )

    @get("/api/draws", summary="Recorded draws, newest first", responses=error_responses(400, 422))
    async def list_draws(
        self,
        db: AsyncDatabase,
        machine_type: Annotated[str | None, Parameter(query="machine_type", schema_extra=MACHINE_TYPE_PARAM)] = None,
        limit: Annotated[int, Parameter(ge=1, le=5000)] = 100,
    ) -> LottoDrawList:
        query: dict[str, Any] = {}
        if machine_type is not None:
            query["machine"] = machine_or_400(machine_type)
        docs = await db[mongo.LOTTO_DRAWS].find(query).sort("round", -1).limit(limit).to_list(None)
        counted = await (
            await db[mongo.LOTTO_DRAWS].aggregate(
                [
                    {"$match": query},
                    {
                        "$group": {
                            "_id": None,
                            "total": {"$sum": 1},
                            "synthetic": {"$sum": {"$cond": ["$synthetic", 1, 0]}},
                        }
                    },
                ]
            )
        ).to_list(None)
        total, synthetic = (counted[0]["total"], counted[0]["synthetic"]) if counted else (0, 0)
        return LottoDrawList(
            machine_type=machine_label(query["machine"]) if "machine" in query else None,
            draws=[_draw_out(d) for d in docs],
            count=len(docs),
            total=total,
            synthetic_draws=synthetic,
            note=(
                "synthetic draws are uniform random demo data (modelbus demo), not real results" if synthetic else None
            ),
        )

    # -- statistics and backtests -------------------------------------------------------------------------------
    @get(
        "/api/statistics/machine-analysis/{machine_type:str}",
        summary="Per-machine statistics over its last `rounds` draws, with backtested performance",
        responses=error_responses(400, 404, 422),
    )
    async def machine_analysis(
        self,
        rpc: RpcClient,
        machine_type: Annotated[str, Parameter(schema_extra=MACHINE_TYPE_PARAM)],
        rounds: Annotated[int, Parameter(ge=1, le=10000)] = 50,
    ) -> LottoMachineAnalysis:
        machine = machine_or_400(machine_type)
        body = lotto.StatisticsBody(machine=machine, rounds=rounds)
        return await call_worker(rpc, lotto.LOTTO_STATISTICS, body, key=f"m{machine}")

    @get(
        "/api/statistics/backtest",
        summary="Rolling-origin backtest beside the exact random baseline",
        responses=error_responses(400, 404, 422),
    )
    async def backtest(
        self,
        rpc: RpcClient,
        machine_type: Annotated[str, Parameter(schema_extra=MACHINE_TYPE_PARAM)],
        algorithm: Annotated[str, Parameter(schema_extra={"enum": list(ALGORITHMS)})] = "enhanced",
        rounds: Annotated[int, Parameter(ge=1, le=500)] = 100,
        sets_per_round: Annotated[int, Parameter(ge=1, le=20)] = 5,
        analysis_window: Annotated[int, Parameter(ge=10, le=100)] = 50,
    ) -> LottoBacktest:
        machine = machine_or_400(machine_type)
        if algorithm not in ALGORITHMS:
            raise ApiError(
                422,
                "VALIDATION_ERROR",
                f"algorithm: must be one of {', '.join(ALGORITHMS)}",
                field="algorithm",
                details=[{"field": "algorithm", "message": f"one of {', '.join(ALGORITHMS)}", "value": algorithm}],
            )
        body = lotto.BacktestBody(
            machine=machine,
            algorithm=algorithm,  # type: ignore[arg-type]  (checked above, with the route's own error)
            rounds=rounds,
            sets_per_round=sets_per_round,
            analysis_window=analysis_window,
        )
        return await call_worker(rpc, lotto.LOTTO_BACKTEST, body, key=f"m{machine}")

    # -- generation ---------------------------------------------------------------------------------------------
    @post(
        "/api/predictions/generate",
        status_code=HTTP_200_OK,
        summary="Generate number sets for a machine",
        responses={HTTP_200_OK: ResponseSpec(PredictionResponse, generate_examples=False, description="the sets")}
        | error_responses(400, 404, 409, 422),
    )
    async def generate(
        self, request: Request[Any, Any, Any], data: PredictionRequest, rpc: RpcClient
    ) -> PredictionResponse:
        machine = machine_or_400(data.machine_type)
        body = lotto.GenerateBody(**data.model_dump(), machine=machine)
        result = await call_worker(rpc, lotto.LOTTO_GENERATE, body, key=f"m{machine}")
        return PredictionResponse.model_validate(_stamp(request, result))

    @post(
        ["/api/ensemble/predictions", "/api/ensemble/predictions/"],
        status_code=HTTP_200_OK,
        summary="Ensemble of trained members (weighted_voting, stacking, blending)",
        responses={HTTP_200_OK: ResponseSpec(EnsembleResponse, generate_examples=False, description="the sets")}
        | error_responses(400, 404, 409, 422),
    )
    async def ensemble(
        self, request: Request[Any, Any, Any], data: EnsemblePredictionRequest, rpc: RpcClient
    ) -> EnsembleResponse:
        machine = machine_or_400(data.machine_type)
        body = lotto.EnsembleBody(**data.model_dump(), machine=machine)
        result = await call_worker(rpc, lotto.LOTTO_ENSEMBLE, body, key=f"m{machine}")
        return EnsembleResponse.model_validate(_stamp(request, result))

    # -- training and registry ----------------------------------------------------------------------------------
    @post(
        "/api/models/train",
        status_code=HTTP_202_ACCEPTED,
        summary="Train an ensemble member on a machine",
        description=(
            "`parameters` are the member's own hyperparameters (the if/then/else on `model_type`, from "
            "`ml.lotto.params`; `machine` comes from `machine_type`, so leave it out). Not in the schema (state): "
            "the machine must hold at least `parameters.min_draws` draws (422 NOT_ENOUGH_DRAWS)."
        ),
        responses=error_responses(400, 404, 409, 422),
    )
    async def train(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LottoTrainRequest, TRAIN_BODY],
        db: AsyncDatabase,
        publisher: EventPublisher,
    ) -> LottoTrainAccepted:
        machine = machine_or_400(data.machine_type)
        params = checked_parameters(machine, data.model_type, data.parameters)
        draws = await db[mongo.LOTTO_DRAWS].count_documents({"machine": machine})
        if draws < params["min_draws"]:
            raise ApiError(
                422,
                "NOT_ENOUGH_DRAWS",
                f"{machine_label(machine)} has {draws} draws; {data.model_type} needs at least {params['min_draws']} "
                "(import draws with POST /api/draws)",
                field="machine_type",
                draws=draws,
            )
        estimate = await estimate_minutes(
            db,
            "lotto",
            data.model_type,
            1,
            default_minutes_per_unit=DEFAULT_TRAIN_MINUTES.get(data.model_type, 0.2),
            history=10,
            step=0.01,
        )
        command = await submit(
            request,
            publisher,
            db,
            domain="lotto",
            model_type=data.model_type,
            estimated_minutes=estimate,
            spec=lotto.LottoJobSpec(
                machine=machine,  # type: ignore[arg-type]  (1, 2 or 3: machine_or_400)
                parameters={k: v for k, v in data.parameters.items() if k != "machine"},
            ),
            record_count=draws,
        )
        return LottoTrainAccepted(
            job_id=command.job_id,
            status="started",
            model_type=data.model_type,
            machine_type=machine_label(machine),
            draws=draws,
            parameters=params,
            estimated_duration_minutes=command.estimated_duration_minutes,
            started_at=iso(command.submitted_at),
        )

    @get("/api/models/train/{job_id:str}", summary="Lotto training job status", responses=error_responses(404, 422))
    async def train_status(self, job_id: str, db: AsyncDatabase) -> LottoJobStatus:
        doc = await find_job(db, job_id, "lotto")
        return lotto_job_status(doc)

    @get(
        "/api/models",
        summary="Registered lotto ensemble members with their lineage, newest first",
        responses=error_responses(400, 422),
    )
    async def models(
        self,
        db: AsyncDatabase,
        machine_type: Annotated[str | None, Parameter(query="machine_type", schema_extra=MACHINE_TYPE_PARAM)] = None,
        model_type: Annotated[str | None, Parameter(schema_extra={"enum": list(MODEL_TYPES)})] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> LottoModelList:
        query: dict[str, Any] = {"domain": "lotto"}
        if machine_type is not None:
            query["lineage.machine"] = machine_or_400(machine_type)
        if model_type is not None:
            if model_type not in MODEL_TYPES:
                raise ApiError(
                    422, "VALIDATION_ERROR", f"model_type: one of {', '.join(MODEL_TYPES)}", field="model_type"
                )
            query["model_type"] = model_type
        docs = await db[mongo.MODELS].find(query).sort("trained_at", -1).limit(limit).to_list(None)
        return LottoModelList(models=[_model_out(d) for d in docs], count=len(docs))
