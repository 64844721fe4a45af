"""Batch scoring jobs (``/v1/ml/predict/batch``, issue 16) on the real stack: a data period and uploaded files are
scored by the training worker, every record once, the scores downloadable as JSON lines and CSV; cancel stops a
job; bad input gets the one error format. (A killed worker's job: tests/integration/test_crash_recovery.py.)"""

from __future__ import annotations

import csv
import io
import json
import random
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import SEED_TRAIN_BODY, wait_for, wait_job

PERIOD = SEED_TRAIN_BODY["data_period"]
PATH = "/v1/ml/predict/batch"


@pytest.fixture(scope="module")
def model_id(api: httpx.Client) -> str:
    resp = api.post("/v1/ml/train", json=SEED_TRAIN_BODY)
    assert resp.status_code == 202, resp.text
    final = wait_job(api, resp.json()["job_id"])
    assert final["status"] == "completed", final
    return str(final["model_id"])


def wait_batch(api: httpx.Client, job_id: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = api.get(f"{PATH}/{job_id}").json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(done, timeout, what=f"batch job {job_id}")


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_data_period_is_scored_once_per_record(api: httpx.Client, db: Any, model_id: str) -> None:
    count = api.get("/v1/ml/data/summary", params=PERIOD).json()["record_count"]
    resp = api.post(PATH, json={"data_period": PERIOD, "model_id": model_id, "chunk_records": 5000})
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    assert accepted["model_id"] == model_id and accepted["source"] == "data_period"
    assert accepted["record_count"] == count and accepted["status_url"] == f"{PATH}/{accepted['job_id']}"
    # a scoring job is not a training job: the training routes do not list or show it
    assert api.get(f"/v1/ml/train/status/{accepted['job_id']}").status_code == 404
    assert accepted["job_id"] not in {j["job_id"] for j in api.get("/v1/ml/train/history").json()["jobs"]}

    final = wait_batch(api, accepted["job_id"])
    assert final["status"] == "completed", final
    assert final["progress"] == 100 and final["records_scored"] == count and final["record_count"] == count
    assert final["model_id"] == model_id and final["attempts"] == 1
    assert final["metrics"]["records_scored"] == count and final["metrics"]["records_per_second"] > 0
    assert final["results"] == {
        "jsonl": f"{PATH}/{accepted['job_id']}/results?format=jsonl",
        "csv": f"{PATH}/{accepted['job_id']}/results?format=csv",
    }

    rows = jsonl(api.get(final["results"]["jsonl"]).text)
    assert len(rows) == count
    assert len({r["record"] for r in rows}) == count  # every record once
    assert all(0.0 <= r["score"] <= 1.0 and r["label"] in (0, 1) for r in rows)
    assert all(r["label"] == int(r["score"] >= 0.5) for r in rows)
    assert [r["timestamp"] for r in rows] == sorted(r["timestamp"] for r in rows)
    assert PERIOD["start_date"] <= rows[0]["timestamp"][:10] and rows[-1]["timestamp"][:10] <= PERIOD["end_date"]
    positives = sum(r["label"] for r in rows)
    assert final["metrics"]["predicted_positives"] == positives

    download = api.get(final["results"]["csv"])
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert [t["record"] for t in table] == [r["record"] for r in rows]
    assert abs(float(table[0]["score"]) - rows[0]["score"]) < 1e-9

    job = db.jobs.find_one({"_id": accepted["job_id"]})
    assert job["kind"] == "score" and job["domain"] == "tabular"
    listed = api.get(PATH).json()
    assert accepted["job_id"] in {j["job_id"] for j in listed["jobs"]}


def _file_rows(api: httpx.Client, n: int) -> list[dict[str, Any]]:
    names = sorted(f["name"] for f in api.get("/v1/ml/data/summary", params=PERIOD).json()["features"])
    rng = random.Random(7)
    return [{"record_id": f"tx-{i}", **{name: round(rng.uniform(0, 100), 3) for name in names}} for i in range(n)]


def _in_process_scores(db: Any, model_id: str, rows: list[dict[str, Any]]) -> list[float]:
    from bson import ObjectId
    from gridfs import GridFSBucket

    from ml.tabular import scoring

    doc = db.models.find_one({"_id": model_id})
    artifact = GridFSBucket(db, bucket_name="artifacts").open_download_stream(ObjectId(doc["artifact_id"])).read()
    model = scoring.load_model(doc["model_type"], artifact)
    scores, _ = scoring.score(model, scoring.feature_matrix(rows, list(model.feature_names)))
    return [float(s) for s in scores]


def test_an_uploaded_csv_and_jsonl_are_scored_in_order(api: httpx.Client, db: Any, model_id: str) -> None:
    rows = _file_rows(api, 250)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    resp = api.post(
        PATH,
        files={"file": ("transactions.csv", out.getvalue().encode(), "text/csv")},
        data={"model_id": model_id, "chunk_records": "100"},
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["source"] == "file" and resp.json()["record_count"] == 250
    by_csv = wait_batch(api, resp.json()["job_id"])
    assert by_csv["status"] == "completed" and by_csv["input_filename"] == "transactions.csv", by_csv
    scored = jsonl(api.get(by_csv["results"]["jsonl"]).text)
    assert [s["row"] for s in scored] == list(range(1, 251))
    assert [s["record_id"] for s in scored] == [r["record_id"] for r in rows]
    # the model's own scores of the same rows, in this process
    assert np.allclose([s["score"] for s in scored], _in_process_scores(db, model_id, rows))

    lines = "\n".join(
        json.dumps({"id": r["record_id"], "features": {k: v for k, v in r.items() if k != "record_id"}}) for r in rows
    )
    upload = {"file": ("transactions.jsonl", lines.encode(), "application/x-ndjson")}
    resp = api.post(PATH, files=upload, data={"model_id": model_id})
    assert resp.status_code == 202, resp.text
    by_jsonl = wait_batch(api, resp.json()["job_id"])
    assert by_jsonl["status"] == "completed", by_jsonl
    again = jsonl(api.get(by_jsonl["results"]["jsonl"]).text)
    # the same rows in two formats get the same scores
    assert np.allclose([s["score"] for s in again], [s["score"] for s in scored])
    table = list(csv.DictReader(io.StringIO(api.get(by_jsonl["results"]["csv"]).text)))
    assert list(table[0]) == ["row", "record_id", "score", "label"] and table[0]["record_id"] == "tx-0"


def test_cancel_stops_a_running_job(api: httpx.Client, model_id: str) -> None:
    resp = api.post(
        PATH, json={"data_period": PERIOD, "model_id": model_id, "chunk_records": 500, "max_records_per_second": 2000}
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    wait_for(lambda: api.get(f"{PATH}/{job_id}").json()["records_scored"] > 0, timeout=60, what="scoring under way")
    cancel = api.post(f"{PATH}/{job_id}/cancel")
    assert cancel.status_code == 202 and cancel.json()["cancel_requested"] is True
    final = wait_batch(api, job_id, timeout=60)
    assert final["status"] == "cancelled", final
    assert final["records_scored"] < final["record_count"] and final["results"] is None
    late = api.get(f"{PATH}/{job_id}/results")
    assert late.status_code == 409 and late.json()["error"]["code"] == "JOB_NOT_COMPLETED"
    again = api.post(f"{PATH}/{job_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_FINISHED"


def test_bad_requests_get_the_one_error_format(api: httpx.Client, model_id: str) -> None:
    def error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
        assert resp.status_code == status, resp.text
        body = resp.json()
        assert body["status"] == "error" and body["error"]["code"] == code, body
        return body["error"]

    error(api.post(PATH, json={"data_period": {"start_date": "1999-01-01", "end_date": "1999-01-02"},
                               "model_id": model_id}), 422, "NO_DATA_IN_PERIOD")
    error(api.post(PATH, json={"data_period": PERIOD, "model_id": "model_v9.9.9"}), 404, "MODEL_NOT_FOUND")
    error(api.post(PATH, json={"data_period": PERIOD, "chunk_records": 5}), 422, "VALIDATION_ERROR")
    error(api.post(PATH, json={"data_period": PERIOD, "colour": "red"}), 422, "VALIDATION_ERROR")
    error(api.post(PATH, json={"model_id": model_id}), 422, "VALIDATION_ERROR")
    error(api.post(PATH, content=b"{not json", headers={"content-type": "application/json"}), 400, "INVALID_JSON")
    bad = error(
        api.post(PATH, files={"file": ("x.csv", b"a,b\n1,oops\n", "text/csv")}, data={"model_id": model_id}),
        422,
        "VALIDATION_ERROR",
    )
    assert "row 1" in bad["message"] and bad["field"] == "file"
    error(api.post(PATH, files={"file": ("x.csv", b"a,b\n", "text/csv")}, data={"model_id": model_id}), 422,
          "VALIDATION_ERROR")
    error(api.post(PATH, data={"model_id": model_id}, files={"other": ("x", b"1")}), 422, "VALIDATION_ERROR")
    error(api.get(f"{PATH}/batch_nope"), 404, "JOB_NOT_FOUND")
    error(api.get(f"{PATH}/batch_nope/results"), 404, "JOB_NOT_FOUND")
    error(api.get(f"{PATH}/batch_nope/results", params={"format": "xml"}), 422, "VALIDATION_ERROR")
    production = api.get("/v1/ml/deploy/current").json().get("production")
    if production is None:  # this module runs before the ones that deploy (tests/e2e/conftest.py)
        error(api.post(PATH, json={"data_period": PERIOD}), 409, "NO_PRODUCTION_MODEL")
