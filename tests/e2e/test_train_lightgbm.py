"""Seed 000, first slice: POST /v1/ml/train and GET /v1/ml/train/status on the real stack."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import SEED_TRAIN_BODY, wait_for, wait_job

SEED_STATUS_FIELDS = {
    "job_id",
    "status",
    "model_type",
    "model_id",
    "progress",
    "metrics",
    "started_at",
    "completed_at",
    "duration_minutes",
}


def test_seed_request_trains_to_completion(api: httpx.Client, db: Any) -> None:
    resp = api.post("/v1/ml/train", json=SEED_TRAIN_BODY)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert set(body) == {"job_id", "status", "model_type", "estimated_duration_minutes", "started_at"}
    assert body["status"] == "started" and body["model_type"] == "lightgbm"
    assert body["job_id"].startswith("job_") and body["started_at"].endswith("Z")
    assert body["estimated_duration_minutes"] > 0

    final = wait_job(api, body["job_id"])
    assert set(final) == SEED_STATUS_FIELDS, final
    assert final["status"] == "completed", final
    assert final["progress"] == 100
    assert final["model_id"].startswith("model_v") and final["model_id"].count(".") == 2
    for name in ("accuracy", "precision", "recall", "f1_score"):
        assert 0.0 <= final["metrics"][name] <= 1.0
    assert final["completed_at"] >= final["started_at"]
    # the artifact is in GridFS with its checksum, the model is registered
    model = wait_for(lambda: db.models.find_one({"_id": final["model_id"]}), what="model projection")
    stored = db["artifacts.files"].find_one({"filename": final["model_id"]})
    assert stored is not None and stored["metadata"]["sha256"] == model["artifact_sha256"]
    # history shows it, newest first, with the baseline beside the metrics
    history = api.get("/v1/ml/train/history", params={"limit": 5}).json()["jobs"]
    job = next(j for j in history if j["job_id"] == body["job_id"])
    assert job["baseline"]["accuracy"] < 1.0 and job["holdout"]["fraction"] == 0.2


def test_status_goes_running_and_progress_rises(api: httpx.Client, archive: Any) -> None:
    body = {**SEED_TRAIN_BODY, "hyperparameters": {"n_estimators": 1500, "learning_rate": 0.02, "num_leaves": 63}}
    job_id = api.post("/v1/ml/train", json=body).json()["job_id"]
    seen: list[tuple[str, float]] = []

    def observe() -> bool:
        status = api.get(f"/v1/ml/train/status/{job_id}").json()
        seen.append((status["status"], status["progress"]))
        return status["status"] in ("completed", "failed")

    wait_for(observe, timeout=180, interval=0.1, what="long job")
    assert seen[-1] == ("completed", 100.0), seen[-1]
    assert any(s == "running" and 0 < p < 100 for s, p in seen), seen
    statuses = [s for s, _ in seen]
    assert statuses.index("completed") > max(i for i, s in enumerate(statuses) if s == "running")
    progress = [p for s, p in seen if s == "running"]
    assert progress == sorted(progress)
    types = [e["type"] for e in archive.find({"subject": job_id}).sort("sequence", 1)]
    wait_for(
        lambda: archive.count_documents({"subject": job_id, "type": "modelbus.train.job.completed"}),
        what="archived completion",
    )
    types = [e["type"] for e in archive.find({"subject": job_id}).sort("sequence", 1)]
    assert types[0] == "modelbus.train.job.requested" and types[1] == "modelbus.train.job.running"
    assert "modelbus.train.job.progress" in types and types[-1] == "modelbus.train.job.completed"


def _error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == "error" and set(body) == {"status", "error", "timestamp", "request_id"}
    assert {"code", "message", "field"} <= set(body["error"])
    assert body["request_id"] and resp.headers["X-Request-ID"] == body["request_id"]
    if code:
        assert body["error"]["code"] == code, body
    return body


def test_error_cases(api: httpx.Client, anon: httpx.Client) -> None:
    _error(api.get("/v1/ml/train/status/job_doesnotexist"), 404, "JOB_NOT_FOUND")
    body = _error(api.post("/v1/ml/train", json={**SEED_TRAIN_BODY, "model_type": "xgboost"}), 422, "VALIDATION_ERROR")
    assert body["error"]["field"] == "model_type"
    reversed_period = {**SEED_TRAIN_BODY, "data_period": {"start_date": "2025-11-15", "end_date": "2025-10-01"}}
    body = _error(api.post("/v1/ml/train", json=reversed_period), 422, "VALIDATION_ERROR")
    assert "data_period" in body["error"]["field"]
    body = _error(api.post("/v1/ml/train", json={**SEED_TRAIN_BODY, "hyperparameters": {"max_dept": 7}}), 422)
    assert body["error"]["field"] == "hyperparameters.max_dept"
    resp = api.post("/v1/ml/train", content=b'{"model_type": "lightgbm",', headers={"Content-Type": "application/json"})
    _error(resp, 400, "INVALID_JSON")
    _error(anon.post("/v1/ml/train", json=SEED_TRAIN_BODY), 401, "UNAUTHORIZED")
    _error(anon.post("/v1/ml/train", json=SEED_TRAIN_BODY, headers={"X-API-Key": "mb_wrong"}), 401, "UNAUTHORIZED")
    _error(anon.get("/no/such/route"), 404, "NOT_FOUND")
    echo = anon.get("/no/such/route", headers={"X-Request-ID": "trace-me-123"})
    assert echo.headers["X-Request-ID"] == "trace-me-123" and echo.json()["request_id"] == "trace-me-123"
    empty = {**SEED_TRAIN_BODY, "data_period": {"start_date": "2019-01-01", "end_date": "2019-01-31"}}
    body = _error(api.post("/v1/ml/train", json=empty), 422, "NO_DATA_IN_PERIOD")
    assert body["error"]["records_total"] > 0 and "records exist between" in body["error"]["message"]


def test_health_reports_real_components(anon: httpx.Client) -> None:
    v1 = anon.get("/api/v1/health").json()
    assert v1["status"] == "healthy"
    assert v1["components"] == {
        "api": "healthy",
        "database": "healthy",
        "kafka": "healthy",
        "kubernetes": "not_configured",
        "wandb": "not_configured",
    }
    assert v1["version"] and v1["uptime"]
    mon = anon.get("/api/monitoring/health").json()
    assert mon["components"]["database"]["status"] == "healthy"
    assert mon["components"]["broker"]["status"] == "healthy"
    assert mon["components"]["database"]["response_time_ms"] > 0


def test_docs_and_asyncapi(anon: httpx.Client, settings: Any) -> None:
    assert "swagger" in anon.get("/docs").text.lower()
    assert "redoc" in anon.get("/redoc").text.lower()
    spec = anon.get("/openapi.json").json()
    assert "/v1/ml/train" in spec["paths"] and "/v1/ml/train/status/{job_id}" in spec["paths"]
    doc = anon.get("/asyncapi.json").json()
    from schemas.topics import TOPICS

    assert {settings.topic(t) for t in TOPICS} == set(doc["channels"])
    assert "asyncapi" in anon.get("/asyncapi").text.lower()
    assert anon.get("/metrics").status_code == 200


def test_seed_example_keys_work_in_demo_mode(anon: httpx.Client) -> None:
    """`modelbus up --demo` registers the literal keys the seed documents use in their examples."""
    assert anon.get("/v1/ml/train/history", headers={"X-API-Key": "test-key"}).status_code == 200
    assert anon.get("/v1/ml/train/history", params={"api_key": "your-api-key"}).status_code == 200
    assert anon.get("/v1/ml/train/history", headers={"Authorization": "Bearer your-token"}).status_code == 200
    assert anon.get("/v1/ml/train/history", headers={"Authorization": "Bearer not-a-key"}).status_code == 401
