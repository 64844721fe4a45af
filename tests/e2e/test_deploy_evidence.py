"""Canary evidence on the real stack: a label that comes two days after its prediction is joined; a plainly
broken canary is rolled back within one analysis window after its labels arrive (no 500-request wait); the
status carries each compared metric's anytime-valid interval and marks the per-arm figures descriptive."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from infra.settings import Settings
from schemas import deploy
from schemas.common import new_id, utcnow
from schemas.envelope import Envelope
from tests.conftest import SEED_TRAIN_BODY, wait_for, wait_job

WINDOW_S = 3.0


def features(i: int) -> dict[str, float]:
    return {"amount": 10.0 + (i * 37) % 900, "hour": float(i % 24), "log_amount": 2.0 + (i % 7) * 0.5}


def predict(api: httpx.Client, keys: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for first in range(0, len(keys), 200):
        chunk = keys[first : first + 200]
        records = [{"features": features(first + i), "routing_key": k} for i, k in enumerate(chunk)]
        resp = api.post("/v1/ml/predict", json={"records": records})
        assert resp.status_code == 200, resp.text
        out += resp.json()["predictions"]
    return out


@pytest.fixture(scope="module")
def canary(api: httpx.Client) -> dict[str, str]:
    """A canary at 50 % with the suite's default policy (500 requests per arm before proceed) and 3 s windows."""
    jobs = []
    for n in (25, 45):
        body = SEED_TRAIN_BODY | {"hyperparameters": {"n_estimators": n, "max_depth": 5}}
        jobs.append(api.post("/v1/ml/train", json=body).json()["job_id"])
    baseline, new = (wait_job(api, j)["model_id"] for j in jobs)
    state = api.get("/v1/ml/deploy/current").json()
    assert state["canary"] is None, state
    for step, model in (("staging", baseline), ("production", baseline), ("staging", new)):
        assert api.post(f"/v1/ml/deploy/{step}", json={"model_id": model}).status_code == 200
    resp = api.post(
        "/v1/ml/deploy/canary/start",
        json={"model_id": new, "initial_traffic_percentage": 50, "policy": {"window_seconds": WINDOW_S}},
    )
    assert resp.status_code == 202, resp.text
    canary_id = resp.json()["canary_id"]
    wait_for(lambda: predict(api, ["warm"])[0]["canary_id"] == canary_id, timeout=10, what="canary routing")
    return {"canary_id": canary_id, "baseline": baseline, "new": new}


def test_a_label_two_days_after_its_prediction_is_joined(
    api: httpx.Client, canary: dict[str, str], settings: Settings
) -> None:
    """As a producer on ``predict.served`` / ``predict.feedback`` would send them: event times two days apart."""
    canary_id = canary["canary_id"]
    pid = new_id("pred")
    served_at = utcnow() - timedelta(days=2)
    served = deploy.PredictionServed(
        prediction_id=pid, model_id=canary["new"], arm="canary", canary_id=canary_id, percentage=50.0,
        score=0.8, label=1, latency_ms=3.0, served_at=served_at,
    )
    feedback = deploy.PredictionFeedback(prediction_id=pid, label=1, received_at=utcnow())

    async def publish() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            env = Envelope.wrap(deploy.PREDICTION_SERVED, pid, served, source="test")
            env = env.model_copy(update={"time": served_at})  # an event from two days ago
            await producer.send_and_wait(settings.topic("predict.served"), env.to_bytes(), key=pid.encode())
            env = Envelope.wrap(deploy.PREDICTION_FEEDBACK, pid, feedback, source="test")
            await producer.send_and_wait(settings.topic("predict.feedback"), env.to_bytes(), key=pid.encode())
        finally:
            await producer.stop()

    before = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()["metrics"]["new_model"]
    asyncio.run(publish())

    def joined() -> dict[str, Any] | None:
        arm = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()["metrics"]["new_model"]
        # requests: at least one more (the fixture's warm-up predictions may still be arriving); labels: exactly one
        return arm if arm["labelled"] == before["labelled"] + 1 and arm["requests"] >= before["requests"] + 1 else None

    arm = wait_for(joined, timeout=60, what="the two-day-old label to be joined")
    assert arm["labels_too_late"] == 0


def test_a_plainly_broken_canary_is_rolled_back_within_one_window(api: httpx.Client, canary: dict[str, str]) -> None:
    """Production ~95 % accurate, the canary a coin flip at 50 % traffic, 800 predictions all labelled: harm is
    shown long before the 500 requests per arm that proceed needs."""
    canary_id = canary["canary_id"]
    rng = random.Random(3)
    preds = predict(api, [f"broken-{i}" for i in range(800)])
    assert {p["canary_id"] for p in preds} == {canary_id}
    feedback = []
    for p in preds:
        if p["arm"] == "canary":
            truth = rng.randrange(2)  # whatever the canary said: right half of the time
        else:
            truth = p["label"] if rng.random() < 0.95 else 1 - p["label"]
        feedback.append({"prediction_id": p["prediction_id"], "label": truth})
    resp = api.post("/v1/ml/feedback", json={"feedback": feedback})
    assert resp.status_code == 202 and resp.json()["accepted"] == 800, resp.text
    t0 = time.monotonic()
    status = wait_for(
        lambda: (s := api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json())["recommendation"] == "rollback"
        and s,
        timeout=30,
        interval=0.1,
        what="the broken canary's rollback verdict",
    )
    elapsed = time.monotonic() - t0
    assert elapsed < WINDOW_S + 3.0, f"rollback {elapsed:.1f} s after the labels (window {WINDOW_S} s)"
    new, old = status["metrics"]["new_model"], status["metrics"]["old_model"]
    assert min(new["requests"], old["requests"]) < 500  # the old rule would still be holding
    assert "accuracy" in status["reason"] or "정확도" in status["reason"]
    # the compared metrics carry their anytime-valid intervals; the per-arm figures are marked descriptive
    accuracy = next(row for row in status["comparison"] if row["metric"] == "accuracy")
    low, high = accuracy["anytime_valid_interval"]
    assert low <= accuracy["difference"] <= high < -0.01 and accuracy["status"] == "harm"
    assert "anytime-valid" in status["comparison_note"] and "descriptive" in status["metrics_note"]
    assert new["descriptive"] is True and old["descriptive"] is True
    assert status["evidence"]["labelled"]["new_model"] == new["labelled"]
    # end it, as an operator following the verdict would
    resp = api.post(f"/v1/ml/deploy/canary/{canary_id}/rollback")
    assert resp.status_code == 200, resp.text
