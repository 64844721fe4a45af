"""Seed 000, deployment half, on real servers: staging → canary → status → 25 % → production → emergency
rollback with the seed's fields; serving through Kafka request/reply with sticky canary routing; feedback;
the analyser's verdicts; the conflict rules; the audit trail rebuilt identically by replay."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from bootstrap.replay import replay_stack
from bootstrap.stack import StackThread
from infra.settings import Settings
from tests.conftest import SEED_TRAIN_BODY, wait_for, wait_job

HANGUL = re.compile(r"[\uac00-\ud7a3]")
POLICY = {"min_requests": 40, "min_labelled": 20, "window_seconds": 1}


def _features(i: int) -> dict[str, float]:
    return {"amount": 10.0 + (i * 37) % 900, "hour": float(i % 24), "log_amount": 2.0 + (i % 7) * 0.5}


def _train(api: httpx.Client, n_estimators: int) -> str:
    body = SEED_TRAIN_BODY | {"hyperparameters": {**SEED_TRAIN_BODY["hyperparameters"], "n_estimators": n_estimators}}
    resp = api.post("/v1/ml/train", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


@pytest.fixture(scope="module")
def models(api: httpx.Client) -> dict[str, str]:
    jobs = {name: _train(api, n) for name, n in (("old", 60), ("new", 100), ("spare", 20))}
    out = {}
    for name, job_id in jobs.items():
        final = wait_job(api, job_id)
        assert final["status"] == "completed", final
        out[name] = final["model_id"]
    return out


def _predict(api: httpx.Client, keys: list[str], **headers: str) -> list[dict[str, Any]]:
    records = [{"features": _features(i), "routing_key": k} for i, k in enumerate(keys)]
    resp = api.post("/v1/ml/predict", json={"records": records}, headers=headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == len(keys)
    return body["predictions"]


def _code(resp: httpx.Response) -> str:
    return resp.json()["error"]["code"]


def test_seed_deploy_sequence(
    api: httpx.Client, models: dict[str, str], settings: Settings, stack: StackThread
) -> None:
    old, new, spare = models["old"], models["new"], models["spare"]

    # nothing in production yet: predictions are refused, an emergency rollback has nothing to restore
    resp = api.post("/v1/ml/predict", json={"features": _features(1)})
    assert resp.status_code == 409 and _code(resp) == "NO_PRODUCTION_MODEL", resp.text
    assert api.post("/v1/ml/deploy/rollback/emergency").status_code == 409

    # the old model goes to production through staging
    resp = api.post("/v1/ml/deploy/production", json={"model_id": old})
    assert resp.status_code == 409 and _code(resp) == "NOT_STAGED", resp.text  # trained, never staged
    resp = api.post("/v1/ml/deploy/production", json={"model_id": "model_v9.9.9"})
    assert resp.status_code == 409, resp.text  # never trained
    staged = api.post("/v1/ml/deploy/staging", json={"model_id": old})
    assert staged.status_code == 200, staged.text
    assert set(staged.json()) == {"model_id", "environment", "deployed_at", "status"}
    assert staged.json()["environment"] == "staging" and staged.json()["status"] == "active"
    assert api.post("/v1/ml/deploy/staging", json={"model_id": old}).status_code == 409  # already staged
    assert api.post("/v1/ml/deploy/production", json={"model_id": old}).status_code == 200
    assert api.post("/v1/ml/deploy/rollback/emergency").status_code == 409  # no previous production model

    single = api.post("/v1/ml/predict", json={"features": _features(3), "routing_key": "u-1"})
    assert single.status_code == 200, single.text
    first = single.json()
    assert {"prediction_id", "model_id", "score", "label", "latency_ms"} <= set(first)
    assert first["model_id"] == old and first["label"] in (0, 1) and first["latency_ms"] > 0

    # seed: staging → canary start (202)
    assert api.post("/v1/ml/deploy/canary/start", json={"model_id": new}).status_code == 409  # not staged
    assert api.post("/v1/ml/deploy/staging", json={"model_id": new}).status_code == 200
    resp = api.post(
        "/v1/ml/deploy/canary/start",
        json={"model_id": new, "initial_traffic_percentage": 10, "monitoring_duration_minutes": 30, "policy": POLICY},
    )
    assert resp.status_code == 202, resp.text
    start = resp.json()
    canary_id = start["canary_id"]
    assert start["model_id"] == new and start["current_traffic_percentage"] == 10
    assert start["status"] == "monitoring" and start["started_at"].endswith("Z")

    # one canary at a time; traffic only increases
    assert api.post("/v1/ml/deploy/staging", json={"model_id": spare}).status_code == 200
    resp = api.post("/v1/ml/deploy/canary/start", json={"model_id": spare, "initial_traffic_percentage": 10})
    assert resp.status_code == 409 and _code(resp) == "CANARY_ACTIVE"
    for target in (5, 10):
        resp = api.post(f"/v1/ml/deploy/canary/{canary_id}/increase-traffic", json={"target_percentage": target})
        assert resp.status_code == 409 and _code(resp) == "TRAFFIC_ONLY_INCREASES", resp.text
    assert (
        api.post("/v1/ml/deploy/canary/canary_nope/increase-traffic", json={"target_percentage": 50}).status_code == 404
    )
    resp = api.post(f"/v1/ml/deploy/canary/{canary_id}/increase-traffic", json={"target_percentage": 101})
    assert resp.status_code == 422
    resp = api.post("/v1/ml/deploy/production", json={"model_id": spare})
    assert resp.status_code == 409 and _code(resp) == "CANARY_ACTIVE"

    # sticky routing on the real path: the same keys land on the same arms (once the workers have re-read
    # the deployment, which they do every MODELBUS_DEPLOY_REFRESH_MS)
    keys = [f"user-{i}" for i in range(400)]
    wait_for(
        lambda: all(p["canary_id"] == canary_id for p in _predict(api, keys[:5])), 5, what="workers route the canary"
    )
    a, b = _predict(api, keys), _predict(api, keys)
    arms = {p["routing_key"]: p["arm"] for p in a}
    assert arms == {p["routing_key"]: p["arm"] for p in b}
    assert all(p["model_id"] == (new if p["arm"] == "canary" else old) for p in a + b)
    share = sum(arm == "canary" for arm in arms.values()) / len(arms)
    assert 0.04 < share < 0.18, share

    # feedback: known ids accepted, unknown ones reported (batch) or 404 (single)
    preds = a + b
    fb = [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in preds]
    resp = api.post("/v1/ml/feedback", json={"feedback": [*fb[:500], {"prediction_id": "pred_unknown", "label": 1}]})
    assert resp.status_code == 202, resp.text
    assert resp.json()["accepted"] == 500 and resp.json()["unknown"] == ["pred_unknown"]
    resp = api.post("/v1/ml/feedback", json={"feedback": fb[500:]})
    assert resp.status_code == 202 and resp.json()["accepted"] == 300
    resp = api.post("/v1/ml/feedback", json={"prediction_id": "pred_nope", "label": 0})
    assert resp.status_code == 404 and _code(resp) == "PREDICTION_NOT_FOUND"

    # seed: canary status, with the analyser's metrics and a readable reason (ko by default, en on request)
    def analysed() -> dict[str, Any] | None:
        body = api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()
        arm = body["metrics"]["new_model"]
        return body if arm["requests"] > 0 and arm["labelled"] > 0 and body["numbers"] else None

    status = wait_for(analysed, timeout=60, what="canary metrics")
    assert {
        "canary_id",
        "model_id",
        "current_traffic_percentage",
        "status",
        "metrics",
        "recommendation",
        "reason",
    } <= set(status)
    assert status["canary_id"] == canary_id and status["model_id"] == new
    assert status["current_traffic_percentage"] == 10 and status["status"] == "monitoring"
    for arm in ("new_model", "old_model"):
        figures = status["metrics"][arm]
        assert {"accuracy", "avg_response_time_ms", "requests", "error_rate", "latency_p95_ms"} <= set(figures)
        assert {"precision", "recall", "accuracy_ci", "labelled"} <= set(figures)
    assert status["metrics"]["old_model"]["accuracy"] == 1.0  # the labels were the predictions themselves
    assert status["recommendation"] in ("proceed", "hold", "rollback")
    assert HANGUL.search(status["reason"]), status["reason"]
    english = api.get(f"/v1/ml/deploy/canary/{canary_id}/status", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert english.json()["reason_language"] == "en" and not HANGUL.search(english.json()["reason"])

    # seed: increase to 25 %: keys on the canary stay there (monotone routing)
    resp = api.post(f"/v1/ml/deploy/canary/{canary_id}/increase-traffic", json={"target_percentage": 25})
    assert resp.status_code == 200 and resp.json()["current_traffic_percentage"] == 25, resp.text

    def at_25() -> list[dict[str, Any]] | None:
        out = _predict(api, keys)
        share = sum(p["arm"] == "canary" for p in out) / len(out)
        return out if share > 0.18 else None

    c = wait_for(at_25, timeout=5, interval=0.1, what="25% routing")
    assert all(p["arm"] == "canary" for p in c if arms[p["routing_key"]] == "canary")

    # seed: production (100 %): the canary ends, the old model is archived
    resp = api.post("/v1/ml/deploy/production", json={"model_id": new})
    assert resp.status_code == 200, resp.text
    prod = resp.json()
    assert {"model_id", "environment", "traffic_percentage", "deployed_at"} <= set(prod)
    assert prod["model_id"] == new and prod["environment"] == "production" and prod["traffic_percentage"] == 100
    assert api.get(f"/v1/ml/models/{old}").json()["status"] == "archived"
    assert api.get(f"/v1/ml/models/{new}").json()["status"] == "production"
    assert api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json()["status"] == "promoted"
    resp = api.post(f"/v1/ml/deploy/canary/{canary_id}/increase-traffic", json={"target_percentage": 50})
    assert resp.status_code == 409 and _code(resp) == "CANARY_NOT_ACTIVE"
    wait_for(lambda: all(p["model_id"] == new for p in _predict(api, keys[:50])), timeout=5, interval=0.1)

    # seed: emergency rollback: the old model is back, and serves new predictions within one second
    resp = api.post("/v1/ml/deploy/rollback/emergency")
    t0 = time.monotonic()
    assert resp.status_code == 200, resp.text
    rb = resp.json()
    assert {"rolled_back_to", "reason", "rolled_back_at"} <= set(rb)
    assert rb["rolled_back_to"] == old and HANGUL.search(rb["reason"])
    while True:
        served = _predict(api, keys[:20])
        if all(p["model_id"] == old for p in served):
            break
        assert time.monotonic() - t0 < 1.0, "predictions still came from the rolled-back model after 1 s"
    assert time.monotonic() - t0 < 1.0
    assert api.get(f"/v1/ml/models/{new}").json()["status"] == "rolled_back"

    # rollback to a given version: unknown 404, current production / never in production 409
    resp = api.post("/v1/ml/deploy/rollback", json={"model_id": "model_v0.0.404", "reason": "x"})
    assert resp.status_code == 404 and _code(resp) == "MODEL_NOT_FOUND"
    assert api.post("/v1/ml/deploy/rollback", json={"model_id": old, "reason": "x"}).status_code == 409
    assert api.post("/v1/ml/deploy/rollback", json={"model_id": spare, "reason": "x"}).status_code == 409

    # the audit trail: every change with actor, time, reason and metric snapshot
    history = api.get("/v1/ml/deploy/history").json()["history"]
    actions = [h["action"] for h in reversed(history)]
    assert actions == [
        "staging",
        "production",
        "staging",
        "canary_started",
        "staging",
        "traffic_increased",
        "production",
        "emergency_rollback",
    ], actions
    assert all(h["actor"] and h["time"].endswith("Z") for h in history)
    promote = next(h for h in history if h["action"] == "production" and h["model_id"] == new)
    assert promote["metrics"]["canary_id"] == canary_id and promote["metrics"]["metrics"]["new_model"] is not None
    assert history[0]["reason"] == rb["reason"]

    # replay rebuilds the deployment projections identically
    async def run() -> Any:
        return await replay_stack(settings, source="archive")

    names = ("deployments", "canaries", "deploy_history", "models", "predictions", "canary_strata", "canary_windows")
    deadline, report = time.monotonic() + 40, None
    while time.monotonic() < deadline:  # the archive consumer trails the projections slightly
        report = stack.run(run())
        if all(not report.differences.get(n) for n in names):
            break
        time.sleep(0.5)
    assert report is not None and all(not report.differences.get(n) for n in names), {
        n: report.differences.get(n) for n in names
    }
    assert report.counts["deploy_history"]["rebuilt"] == len(history)


def test_predict_validation(api: httpx.Client) -> None:
    assert api.post("/v1/ml/predict", json={}).status_code == 422
    assert api.post("/v1/ml/predict", json={"records": [{"features": {}}] * 1001}).status_code == 422
    assert api.post("/v1/ml/feedback", json={"prediction_id": "x"}).status_code == 422


def _auto_canary(
    api: httpx.Client,
    models: dict[str, str],
    base_url: str,
    *,
    scenario: str,
    initial: int,
    minutes: float,
    accuracies: tuple[float, float],
    duration_s: float,
) -> tuple[dict[str, Any], str, dict[str, Any], dict[str, Any], list[str]]:
    """Starts an `auto: true` canary of the spare model, drives it with the simulator until it ends, and
    returns (deployment before, canary id, final canary status, simulator result, simulator output)."""
    import asyncio

    from producers.canary.simulator import simulate
    from tests.conftest import TEST_KEY

    state = api.get("/v1/ml/deploy/current").json()
    assert state["production"] and state["canary"] is None, state
    spare = models["spare"]
    if api.get(f"/v1/ml/models/{spare}").json()["status"] != "staging":
        assert api.post("/v1/ml/deploy/staging", json={"model_id": spare}).status_code == 200
    resp = api.post(
        "/v1/ml/deploy/canary/start",
        json={
            "model_id": spare,
            "initial_traffic_percentage": initial,
            "monitoring_duration_minutes": minutes,
            "auto": True,
            "policy": {"min_requests": 30, "min_labelled": 20, "window_seconds": 1},
        },
    )
    assert resp.status_code == 202, resp.text
    canary_id = resp.json()["canary_id"]
    lines: list[str] = []
    result = asyncio.run(
        simulate(
            base_url,
            TEST_KEY,
            scenario,
            canary_id=canary_id,
            rps=200,
            duration_s=duration_s,  # the simulator stops as soon as the canary ends
            label_delay_s=0.5,
            batch=20,
            report_every_s=1.0,
            accuracies=accuracies,
            out=lines.append,
        )
    )
    try:
        status = wait_for(
            lambda: (s := api.get(f"/v1/ml/deploy/canary/{canary_id}/status").json())["status"] != "monitoring" and s,
            timeout=60,
            what=f"the end of the {scenario} canary",
        )
    except AssertionError:  # end it, so that the modules after this one start from no running canary
        api.post(f"/v1/ml/deploy/canary/{canary_id}/rollback", json={"reason": "test cleanup"})
        raise
    assert result["predictions"] > 0 and result["feedback"] > 0
    return state, canary_id, status, result, lines


def test_simulator_drives_an_automatic_rollback(api: httpx.Client, models: dict[str, str], base_url: str) -> None:
    """A canary that is much worse is rolled back by the orchestrator (auto: true) following the analyser."""
    state, _, status, _, lines = _auto_canary(
        api, models, base_url, scenario="worse", initial=50, minutes=0.01, accuracies=(0.95, 0.3), duration_s=40
    )
    spare = models["spare"]
    assert status["status"] == "rolled_back" and status["recommendation"] == "rollback", (status, lines)
    assert api.get(f"/v1/ml/models/{spare}").json()["status"] == "rolled_back"
    entry = api.get("/v1/ml/deploy/history", params={"limit": 1}).json()["history"][0]
    assert entry["action"] == "canary_rolled_back" and entry["actor"] == "canary-orchestrator"
    assert api.get("/v1/ml/deploy/current").json()["production"] == state["production"]


def test_simulator_drives_an_automatic_promotion(api: httpx.Client, models: dict[str, str], base_url: str) -> None:
    """A canary that is much better climbs 10 → 25 → 50 → 100 on `proceed` verdicts and is promoted (auto: true)."""
    # 0.02 min = 1.2 s at each step before the next one
    _, _, status, _, lines = _auto_canary(
        api, models, base_url, scenario="better", initial=10, minutes=0.02, accuracies=(0.3, 0.95), duration_s=120
    )
    spare = models["spare"]
    assert status["status"] == "promoted" and status["recommendation"] == "proceed", (status, lines)
    assert api.get("/v1/ml/deploy/current").json()["production"] == spare
    assert api.get(f"/v1/ml/models/{spare}").json()["status"] == "production"
    # the audit trail shows every automatic step, in order
    history = api.get("/v1/ml/deploy/history", params={"limit": 20}).json()["history"]
    auto = [h for h in history if h["actor"] == "canary-orchestrator"][::-1]
    steps = [h["traffic_percentage"] for h in auto if h["action"] == "traffic_increased"]
    assert steps == [25, 50, 100], auto
    assert auto[-1]["action"] == "production" and auto[-1]["model_id"] == spare, auto[-1]
