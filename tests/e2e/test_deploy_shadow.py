"""Shadow deployments on the real stack: a shadow model scores mirrored requests after the reply (the caller's
answers are exactly those without a shadow), its answers join the labels by prediction id, it earns a verdict
against production (a worse one is rejected), one shadow at a time, promoting its model to a canary ends it,
and every step is in the audit trail and rebuilt by replay."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from bootstrap.replay import replay_stack
from bootstrap.stack import StackThread
from infra.settings import Settings
from tests.conftest import SEED_TRAIN_BODY, wait_for, wait_job

POLICY = {"window_seconds": 1}
VOLATILE = ("prediction_id", "worker_ms", "latency_ms")


def features(i: int) -> dict[str, float]:
    return {"amount": 10.0 + (i * 53) % 700, "hour": float(i % 24), "log_amount": 1.5 + (i % 9) * 0.4}


def predict(api: httpx.Client, keys: list[str]) -> list[dict[str, Any]]:
    records = [{"features": features(i), "routing_key": k} for i, k in enumerate(keys)]
    resp = api.post("/v1/ml/predict", json={"records": records})
    assert resp.status_code == 200, resp.text
    return resp.json()["predictions"]


def _train(api: httpx.Client, body: dict[str, Any]) -> str:
    final = wait_job(api, api.post("/v1/ml/train", json=body).json()["job_id"])
    assert final["status"] == "completed", final
    return str(final["model_id"])


@pytest.fixture(scope="module")
def models(api: httpx.Client) -> dict[str, str]:
    state = api.get("/v1/ml/deploy/current").json()
    assert state["production"] and state["canary"] is None and state["shadow"] is None, state
    coin = SEED_TRAIN_BODY | {"model_type": "isolation_forest",
                              "hyperparameters": {"n_estimators": 50, "contamination": 0.5}}
    fair = SEED_TRAIN_BODY | {"hyperparameters": {"n_estimators": 35, "max_depth": 4}}
    return {"production": state["production"], "coin": _train(api, coin), "fair": _train(api, fair)}


def _without_volatile(preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in p.items() if k not in VOLATILE} for p in preds]


def test_a_worse_shadow_is_rejected_without_touching_a_single_response(
    api: httpx.Client, db: Any, models: dict[str, str]
) -> None:
    keys = [f"shadow-user-{i}" for i in range(300)]
    without = predict(api, keys)

    resp = api.post("/v1/ml/deploy/shadow/start", json={"model_id": models["coin"], "sample_percentage": 100,
                                                         "policy": POLICY})
    assert resp.status_code == 202, resp.text
    start = resp.json()
    shadow_id = start["shadow_id"]
    assert {"shadow_id", "model_id", "sample_percentage", "status", "started_at"} <= set(start)
    assert start["status"] == "monitoring" and start["sample_percentage"] == 100 and start["started_at"].endswith("Z")
    assert api.get("/v1/ml/deploy/current").json()["shadow"]["shadow_id"] == shadow_id
    again = api.post("/v1/ml/deploy/shadow/start", json={"model_id": models["fair"]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "SHADOW_ACTIVE", again.text

    # once the workers mirror to the shadow, its answers are recorded beside production's, same prediction id
    def mirrored() -> Any:
        pid = predict(api, ["probe"])[0]["prediction_id"]
        time.sleep(0.5)  # the analyser folds served events into the records every 100 ms
        return db.predictions.find_one({"_id": pid, "shadow.shadow_id": shadow_id})

    wait_for(mirrored, timeout=20, what="workers mirroring to the shadow")
    with_shadow = predict(api, keys)
    assert _without_volatile(with_shadow) == _without_volatile(without)  # the caller sees no difference
    assert all(p["model_id"] == models["production"] and p["arm"] == "baseline" for p in with_shadow)

    # labels: production is always right here; the shadow (an anomaly detector flagging half) is not
    fb = [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in with_shadow]
    assert api.post("/v1/ml/feedback", json={"feedback": fb}).status_code == 202

    def rejected() -> dict[str, Any] | None:  # on accuracy, once the labels are in (latency may reject it first:
        body = api.get(f"/v1/ml/deploy/shadow/{shadow_id}/status").json()  # an Isolation Forest scores slower)
        accuracy = next((row for row in body["comparison"] if row["metric"] == "accuracy"), {})
        labelled = body["metrics"]["new_model"]["labelled"]
        return body if body["recommendation"] == "reject" and accuracy.get("status") == "harm" and labelled >= 250 \
            else None

    status = wait_for(rejected, timeout=30, what="the worse shadow's reject verdict")
    assert status["shadow_id"] == shadow_id and status["model_id"] == models["coin"]
    assert status["status"] == "monitoring" and status["current_traffic_percentage"] == 0.0
    new, old = status["metrics"]["new_model"], status["metrics"]["old_model"]
    assert new["labelled"] >= 250 and old["labelled"] == new["labelled"]  # paired on the same requests
    assert old["accuracy"] == 1.0 and new["accuracy"] < 0.8
    accuracy = next(row for row in status["comparison"] if row["metric"] == "accuracy")
    assert accuracy["status"] == "harm" and accuracy["anytime_valid_interval"][1] < -0.01
    assert api.get("/v1/ml/deploy/shadow/shadow_nope/status").status_code == 404

    resp = api.post(f"/v1/ml/deploy/shadow/{shadow_id}/stop")
    assert resp.status_code == 200 and resp.json()["status"] == "stopped", resp.text
    assert api.post(f"/v1/ml/deploy/shadow/{shadow_id}/stop").json()["error"]["code"] == "SHADOW_NOT_ACTIVE"
    assert api.get(f"/v1/ml/deploy/shadow/{shadow_id}/status").json()["status"] == "stopped"
    assert api.get("/v1/ml/deploy/current").json()["shadow"] is None
    history = api.get("/v1/ml/deploy/history", params={"limit": 5}).json()["history"]
    assert [h["action"] for h in history[:2]] == ["shadow_stopped", "shadow_started"]
    assert all(h["shadow_id"] == shadow_id and h["actor"] for h in history[:2])


def test_promoting_the_shadow_model_to_a_canary_ends_the_shadow(
    api: httpx.Client, models: dict[str, str], settings: Settings, stack: StackThread
) -> None:
    fair = models["fair"]
    shadow_id = api.post("/v1/ml/deploy/shadow/start", json={"model_id": fair, "sample_percentage": 50}).json()[
        "shadow_id"
    ]
    assert api.post("/v1/ml/deploy/staging", json={"model_id": fair}).status_code == 200
    resp = api.post("/v1/ml/deploy/canary/start", json={"model_id": fair, "initial_traffic_percentage": 10})
    assert resp.status_code == 202, resp.text
    canary_id = resp.json()["canary_id"]
    shadow = api.get(f"/v1/ml/deploy/shadow/{shadow_id}/status").json()
    assert shadow["status"] == "promoted_to_canary" and shadow["ended_at"]
    current = api.get("/v1/ml/deploy/current").json()
    assert current["shadow"] is None and current["canary"]["canary_id"] == canary_id
    entry = api.get("/v1/ml/deploy/history", params={"limit": 1}).json()["history"][0]
    assert entry["action"] == "canary_started" and entry["shadow_id"] == shadow_id
    assert api.post(f"/v1/ml/deploy/canary/{canary_id}/rollback").status_code == 200

    names = ("shadows", "canaries", "deploy_history", "deployments", "predictions", "canary_strata")
    deadline, report = time.monotonic() + 40, None
    while time.monotonic() < deadline:  # the archive trails the projections slightly
        report = stack.run(replay_stack(settings, source="archive"), timeout=120)
        if all(not report.differences.get(n) for n in names):
            break
        time.sleep(0.5)
    assert report is not None and all(not report.differences.get(n) for n in names), {
        n: report.differences.get(n) for n in names
    }
