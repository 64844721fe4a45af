"""A canary survives a restart of the whole embedded stack (whose broker forgets every topic): after the
restart, its status counts every prediction served and every label received before, labels for predictions
served before the restart are joined, and new traffic adds to the same evidence. Replay from the archive
rebuilds the prediction records and the strata identically.

A stack of its own (embedded Tansu + SecantusDB under a data directory of its own), started twice."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bootstrap.replay import replay_stack
from bootstrap.stack import StackThread
from infra.settings import Settings
from tests.conftest import SEED_TRAIN_BODY, TEST_KEY, wait_for, wait_job


def features(i: int) -> dict[str, float]:
    return {"amount": 10.0 + (i * 37) % 900, "hour": float(i % 24), "log_amount": 2.0 + (i % 7) * 0.5}


def predict(api: httpx.Client, start: int, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for first in range(start, start + n, 100):
        ids = range(first, min(first + 100, start + n))
        records = [{"features": features(i), "routing_key": f"user-{i}"} for i in ids]
        resp = api.post("/v1/ml/predict", json={"records": records})
        assert resp.status_code == 200, resp.text
        out += resp.json()["predictions"]
    return out


def label(api: httpx.Client, predictions: list[dict[str, Any]]) -> None:
    fb = [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in predictions]
    resp = api.post("/v1/ml/feedback", json={"feedback": fb})
    assert resp.status_code == 202 and resp.json()["accepted"] == len(fb), resp.text


def counted(api: httpx.Client, canary_id: str) -> tuple[int, int]:
    body = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()
    new, old = body["metrics"]["new_model"], body["metrics"]["old_model"]
    return new["requests"] + old["requests"], new["labelled"] + old["labelled"]


def start_canary(api: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
    """Two small LightGBM models trained on the demo data, one in production, the other a canary at 50 % with
    1 s windows; returns the canary id and the first prediction routed through it (prediction index 0)."""
    jobs = []
    for n in (30, 60):
        body = SEED_TRAIN_BODY | {"hyperparameters": {"n_estimators": n, "max_depth": 4}}
        jobs.append(api.post("/v1/ml/train", json=body).json()["job_id"])
    old, new = (wait_job(api, j)["model_id"] for j in jobs)
    for step, model in (("staging", old), ("production", old), ("staging", new)):
        assert api.post(f"/v1/ml/deploy/{step}", json={"model_id": model}).status_code == 200
    resp = api.post(
        "/v1/ml/deploy/canary/start",
        json={"model_id": new, "initial_traffic_percentage": 50, "policy": {"window_seconds": 1}},
    )
    assert resp.status_code == 202, resp.text
    canary_id = resp.json()["canary_id"]
    warm: list[dict[str, Any]] = []
    wait_for(lambda: warm.extend(predict(api, 0, 1)) or warm[-1]["canary_id"] == canary_id, timeout=10,
             what="canary routing")
    return canary_id, [p for p in warm if p["canary_id"] == canary_id]


def wait_counted(api: httpx.Client, canary_id: str, requests: int, labelled: int) -> None:
    wait_for(lambda: counted(api, canary_id) == (requests, labelled), timeout=60,
             what=f"status to count {requests} requests and {labelled} labels")
    time.sleep(2.5)  # two more windows: nothing is counted twice
    assert counted(api, canary_id) == (requests, labelled)


def small_stack_settings(data_dir: Path, name: str) -> Settings:
    """A stack of its own under ``data_dir``: small demo data, one training process, consumers inline, no rate
    limits, database and topics named after ``name``."""
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        port=0,
        api_key=TEST_KEY,
        demo_records_per_day=120,
        train_processes=1,
        worker_layout="inline",
        rate_limits_enabled=False,
        mongodb_db=f"modelbus_{name}",
        topic_prefix=f"{name}.",
    )


@pytest.fixture(scope="module")
def own_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return small_stack_settings(tmp_path_factory.mktemp("restart"), "restart")


def test_a_restart_of_the_whole_stack_loses_nothing(own_settings: Settings) -> None:
    first = StackThread(own_settings, demo=True)
    first.start()
    try:
        api = httpx.Client(base_url=first.stack.info["api_url"], headers={"X-API-Key": TEST_KEY}, timeout=30)
        canary_id, routed = start_canary(api)
        before = routed + predict(api, 1, 399)
        label(api, before[:200])
        wait_counted(api, canary_id, 400, 200)
    finally:
        first.stop()

    second = StackThread(own_settings, demo=True)  # same data directory: same database, a new empty broker
    second.start()
    try:
        api = httpx.Client(base_url=second.stack.info["api_url"], headers={"X-API-Key": TEST_KEY}, timeout=30)
        status = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()
        assert status["status"] == "monitoring" and status["current_traffic_percentage"] == 50
        label(api, before[200:])  # predictions served before the restart
        after = predict(api, 1000, 300)
        assert {p["canary_id"] for p in after} == {canary_id}
        label(api, after)
        wait_counted(api, canary_id, 700, 700)
        evidence = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()["evidence"]
        assert evidence["waiting_for_label"] == {"new_model": 0, "old_model": 0}, evidence
        assert evidence["labels_too_late"] == {"new_model": 0, "old_model": 0}, evidence

        names = ("predictions", "canary_strata", "canaries", "canary_windows")

        def identical() -> Any:
            report = second.run(replay_stack(second.stack.settings, source="archive"), timeout=120)
            return report if all(not report.differences.get(n) for n in names) else None

        report = wait_for(identical, timeout=60, interval=1.0, what="replay to rebuild the records and strata")
        assert report.counts["predictions"]["rebuilt"] >= 700
    finally:
        second.stop()
