"""Seed 000, training half: ingestion, both model types on held-out data, registry, compare, cancel, scale."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaProducer

from infra.settings import Settings
from schemas.data import RECORD, RecordIngested
from schemas.envelope import Envelope
from tests.conftest import SEED_TRAIN_BODY, AsyncHonourRetryAfter, wait_for, wait_job


def _records(X: np.ndarray, y: np.ndarray | None, start: datetime, names: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": (start + timedelta(hours=i)).isoformat().replace("+00:00", "Z"),
            "features": {n: float(v) for n, v in zip(names, row, strict=True)},
            **({"label": int(y[i])} if y is not None else {}),
        }
        for i, row in enumerate(X)
    ]


def _summary(api: httpx.Client, start: str, end: str) -> dict[str, Any]:
    resp = api.get("/v1/ml/data/summary", params={"start_date": start, "end_date": end})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_breast_cancer_through_the_api_trains_honestly(api: httpx.Client) -> None:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))  # synthetic timestamps in a random order
    names = [n.replace(" ", "_") for n in data.feature_names]
    start = datetime(2020, 3, 1, tzinfo=UTC)
    resp = api.post(
        "/v1/ml/data",
        json={
            "records": _records(data.data[order], data.target[order], start, names),
            "source": "sklearn-breast-cancer",
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["accepted"] == 569
    summary = _summary(api, "2020-03-01", "2020-03-31")
    assert summary["record_count"] == 569 and summary["labelled_count"] == 569
    assert abs(summary["label_rate"] - data.target.mean()) < 1e-6
    assert {f["name"] for f in summary["features"]} == set(names)
    body = {
        "model_type": "lightgbm",
        "data_period": {"start_date": "2020-03-01", "end_date": "2020-03-31"},
        "hyperparameters": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "max_depth": 5},
    }
    job = api.post("/v1/ml/train", json=body).json()
    final = wait_job(api, job["job_id"])
    assert final["status"] == "completed", final
    history = api.get("/v1/ml/train/history", params={"limit": 20}).json()["jobs"]
    entry = next(j for j in history if j["job_id"] == job["job_id"])
    assert entry["holdout"]["test_records"] == 114 and entry["holdout"]["fraction"] == 0.2
    assert final["metrics"]["accuracy"] >= 0.94, final["metrics"]
    assert final["metrics"]["accuracy"] > entry["baseline"]["accuracy"]
    model = api.get(f"/v1/ml/models/{final['model_id']}").json()
    lineage = model["lineage"]
    assert lineage["job_id"] == job["job_id"] and lineage["record_count"] == 569
    assert lineage["data_period"] == body["data_period"] and lineage["hyperparameters"]["n_estimators"] == 200
    assert lineage["library_versions"]["lightgbm"] and len(model["artifact_sha256"]) == 64


def test_isolation_forest_finds_planted_anomalies(api: httpx.Client) -> None:
    rng = np.random.default_rng(1)
    n, rate = 6000, 0.02
    X = rng.normal(0, 1, (n, 6))
    y = (rng.random(n) < rate).astype(int)
    X[y == 1] = rng.uniform(4, 7, (int(y.sum()), 6)) * rng.choice([-1, 1], (int(y.sum()), 6))
    start = datetime(2021, 1, 1, tzinfo=UTC)
    records = _records(X, y, start, [f"x{i}" for i in range(6)])
    for i in range(0, n, 5000):  # two batches: the API takes up to 10,000 at once
        assert api.post("/v1/ml/data", json={"records": records[i : i + 5000]}).status_code == 201
    body = {
        "model_type": "isolation_forest",
        "data_period": {"start_date": "2021-01-01", "end_date": "2021-09-30"},
        "hyperparameters": {"contamination": rate, "n_estimators": 150},
    }
    final = wait_job(api, api.post("/v1/ml/train", json=body).json()["job_id"])
    assert final["status"] == "completed", final
    assert final["metrics"]["recall"] >= 0.8, final["metrics"]
    assert 0.005 < final["metrics"]["anomaly_rate"] < 0.05


def test_ingestion_rejects_bad_records_by_index_all_or_nothing(api: httpx.Client) -> None:
    before = _summary(api, "2022-01-01", "2022-12-31")["record_count"]
    good = {"timestamp": "2022-02-01T10:00:00Z", "features": {"amount": 12.5, "hour": 10}, "label": 0}
    bad_rows = [good, good, {"timestamp": "yesterday", "features": {"amount": 1}}, {**good, "label": 7}]
    resp = api.post("/v1/ml/data", json={"records": bad_rows})
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["code"] == "INVALID_RECORDS" and [d["index"] for d in err["details"]] == [2, 3]
    assert "timestamp" in err["details"][0]["reason"] and "label" in err["details"][1]["reason"]
    csv_text = "timestamp,amount,hour,label\n2022-03-01T00:00:00Z,10.0,0,0\n2022-03-01T01:00:00Z,abc,1,1\n"
    resp = api.post("/v1/ml/data", files={"file": ("tx.csv", io.BytesIO(csv_text.encode()), "text/csv")})
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["index"] == 1
    assert _summary(api, "2022-01-01", "2022-12-31")["record_count"] == before
    ok_csv = (
        "timestamp,amount,hour,label\n2022-03-01T00:00:00Z,10.0,0,0\n2022-03-01T01:00:00Z,99.5,1,1\n"
        "2022-03-01T02:00:00Z,5,2,\n"
    )
    resp = api.post("/v1/ml/data", files={"file": ("tx.csv", io.BytesIO(ok_csv.encode()), "text/csv")})
    assert resp.status_code == 201 and resp.json()["accepted"] == 3
    raw = api.post(
        "/v1/ml/data", content=ok_csv.replace("2022-03-01", "2022-04-01").encode(), headers={"Content-Type": "text/csv"}
    )
    assert raw.status_code == 201
    summary = _summary(api, "2022-01-01", "2022-12-31")
    assert summary["record_count"] == before + 6 and summary["labelled_count"] == 4
    assert {"name": "amount", "type": "number"} in summary["features"]
    too_many = api.post("/v1/ml/data", json={"records": [good] * 10_001})
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "BATCH_TOO_LARGE"


def test_streamed_records_are_stored_and_bad_ones_dead_lettered(api: httpx.Client, settings: Settings) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            for i in range(50):
                rec = RecordIngested(timestamp=f"2023-05-01T00:{i:02d}:00Z", features={"amount": float(i)}, label=0)
                env = Envelope.wrap(RECORD, f"rec-{i}", rec, source="test-producer")
                await producer.send_and_wait(settings.topic("data.records"), env.to_bytes(), key=b"rec")
            bad = Envelope.wrap(
                RECORD, "rec-bad", RecordIngested(timestamp="not a time", features={"a": 1}), source="test-producer"
            )
            await producer.send_and_wait(settings.topic("data.records"), bad.to_bytes(), key=b"rec-bad")
        finally:
            await producer.stop()

    asyncio.run(produce())
    wait_for(lambda: _summary(api, "2023-05-01", "2023-05-01")["record_count"] == 50, what="streamed records")


def test_cancel_stops_training_and_registers_nothing(api: httpx.Client, db: Any) -> None:
    body = {**SEED_TRAIN_BODY, "hyperparameters": {"n_estimators": 5000, "learning_rate": 0.01, "num_leaves": 127}}
    job_id = api.post("/v1/ml/train", json=body).json()["job_id"]
    wait_for(lambda: api.get(f"/v1/ml/train/status/{job_id}").json()["status"] == "running", what="running")
    resp = api.post(f"/v1/ml/train/{job_id}/cancel")
    assert resp.status_code == 202 and resp.json()["cancel_requested"] is True
    final = wait_job(api, job_id, timeout=60)
    assert final["status"] == "cancelled" and final["progress"] < 100 and final["model_id"] is None
    assert db.models.count_documents({"lineage.job_id": job_id}) == 0
    again = api.post(f"/v1/ml/train/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_FINISHED"


def test_hyperparameters_validated_per_type(api: httpx.Client) -> None:
    cases = [
        ({"learning_rate": 5}, "hyperparameters.learning_rate"),
        ({"contamination": 0.1}, "hyperparameters.contamination"),  # an Isolation Forest parameter
        ({"n_estimators": 0}, "hyperparameters.n_estimators"),
    ]
    for params, field in cases:
        resp = api.post("/v1/ml/train", json={**SEED_TRAIN_BODY, "hyperparameters": params})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == field
    iso = {**SEED_TRAIN_BODY, "model_type": "isolation_forest", "hyperparameters": {"contamination": 0.9}}
    assert api.post("/v1/ml/train", json=iso).status_code == 422


def test_compare_twenty_jobs_and_registry(api: httpx.Client) -> None:
    bodies = [
        {
            **SEED_TRAIN_BODY,
            "hyperparameters": {"n_estimators": 20 + i, "learning_rate": 0.05 + 0.01 * i, "max_depth": 3 + i % 4},
        }
        for i in range(20)
    ]
    with httpx.Client(base_url=str(api.base_url), headers=dict(api.headers), timeout=30) as client:

        async def submit_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(
                base_url=str(api.base_url), headers=dict(api.headers), timeout=30, transport=AsyncHonourRetryAfter()
            ) as ac:
                return await asyncio.gather(*(ac.post("/v1/ml/train", json=b) for b in bodies))

        responses = asyncio.run(submit_all())
        assert all(r.status_code == 202 for r in responses)
        finals = [wait_job(client, r.json()["job_id"], timeout=240) for r in responses]
    assert all(f["status"] == "completed" for f in finals), [f["status"] for f in finals]
    ids = [f["model_id"] for f in finals]
    assert len(set(ids)) == 20
    resp = api.post("/v1/ml/models/compare", json={"model_ids": ids[:3]})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [r["model_id"] for r in out["comparison"]] == ids[:3]
    by_id = {r["model_id"]: r for r in out["comparison"]}
    best = max(out["comparison"], key=lambda r: (r["f1_score"], r["roc_auc"]))
    assert out["leader"] == best["model_id"] and out["same_holdout"] is True
    # these three near-identical models are named a winner only if the paired F1 interval says so
    if out["winner"] is None:
        assert out["improvement"] == {} and "not conclusively better" in out["reason"], out
    else:
        assert out["winner"] == best["model_id"]
        second = sorted(out["comparison"], key=lambda r: (r["f1_score"], r["roc_auc"]), reverse=True)[1]
        assert out["improvement"]["f1_score"] == round(by_id[out["winner"]]["f1_score"] - second["f1_score"], 4)
    missing = api.post("/v1/ml/models/compare", json={"model_ids": [ids[0], "model_v9.9.9"]})
    assert missing.status_code == 404 and "model_v9.9.9" in missing.json()["error"]["message"]
    assert api.post("/v1/ml/models/compare", json={"model_ids": [ids[0]]}).status_code == 422
    listed = api.get("/v1/ml/models", params={"model_type": "lightgbm", "status": "trained"}).json()["models"]
    assert set(ids) <= {m["model_id"] for m in listed}
    first = next(m for m in listed if m["model_id"] == ids[0])
    assert set(first) == {
        "model_id",
        "model_name",
        "model_type",
        "version",
        "status",
        "metrics",
        "trained_at",
        "deployed_at",
    }
    assert first["model_name"] == f"LightGBM v{first['version']}"
    assert api.get("/v1/ml/models", params={"status": "production"}).status_code == 200
    assert api.get("/v1/ml/models/model_v0.0.0").status_code == 404


def test_counts_cut_blocks_exactly_and_the_block_index_heals(api: httpx.Client, db: Any, settings: Settings) -> None:
    """2,500 records at 100-minute steps are stored as blocks of 1,000 whose edges fall inside days: the
    period count (training's 422 and estimate, the summary) reads the small index documents for whole blocks
    and the boundary blocks themselves. A block whose index entry is missing is found again at start-up."""
    from infra import mongo
    from infra.tabular import records

    start = datetime(2031, 1, 1, tzinfo=UTC)
    rows = [
        {
            "timestamp": (start + timedelta(minutes=100 * i)).isoformat(),
            "features": {"amount": float(i)},
            "label": i % 2,
        }
        for i in range(2500)
    ]
    assert api.post("/v1/ml/data", json={"records": rows}).status_code == 201
    day = lambda i: (start + timedelta(minutes=100 * i)).date()  # noqa: E731
    expected = sum(1 for i in range(2500) if datetime(2031, 1, 20).date() <= day(i) <= datetime(2031, 2, 10).date())
    assert _summary(api, "2031-01-20", "2031-02-10")["record_count"] == expected
    assert _summary(api, "2031-01-01", "2031-12-31")["record_count"] == 2500

    # healing, on a database of its own (worker processes starting elsewhere in the suite heal the shared one)
    async def heal() -> tuple[int, int, int]:
        client = mongo.client(settings)
        own = client[settings.mongodb_db + "_heal"]
        try:
            await client.drop_database(own.name)
            await records.insert_records(
                own, [{**r, "timestamp": datetime.fromisoformat(r["timestamp"])} for r in rows], source="test"
            )
            entry = await own[mongo.RECORD_BLOCK_INDEX].find_one({}, sort=[("start", 1)])  # 1,000 records
            await own[mongo.RECORD_BLOCK_INDEX].delete_one({"_id": entry["_id"]})
            before = await records.count_records(own, start, start + timedelta(days=365))
            added = await records.sync_block_index(own)
            return before, added, await records.count_records(own, start, start + timedelta(days=365))
        finally:
            await client.drop_database(settings.mongodb_db + "_heal")
            await client.close()

    before, added, after = asyncio.run(heal())
    assert before == 1500 and added == 1 and after == 2500
