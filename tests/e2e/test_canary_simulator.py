"""``modelbus simulate canary`` with the key a newcomer has: a premium key (100 requests a minute) that the
simulator runs into. It waits ``Retry-After`` and paces itself instead of dying, finds the running canary
even when its first request is refused, says why it stops, and turns an error answer into one readable line.

Runs after ``test_deploy_canary`` (``tests/e2e/conftest.py``): it needs a model in production."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bootstrap.stack import StackThread
from infra import keys, mongo
from infra.settings import Settings
from producers.canary.simulator import simulate
from tests.conftest import SEED_TRAIN_BODY, TEST_KEY, wait_job

PREMIUM_PER_MINUTE = 100


def _premium_key(stack: StackThread, settings: Settings) -> tuple[str, str]:
    """A new premium key (read, predict) stored with ``infra.keys.store_key``: (key, key id)."""

    async def create() -> tuple[str, str]:
        client = mongo.client(settings)
        try:
            key = keys.generate_key()
            doc = await keys.store_key(
                client[settings.mongodb_db], key, name="simulator-test", tier="premium", scopes=("read", "predict")
            )
            return key, str(doc["_id"])
        finally:
            await client.close()

    return tuple(stack.run(create()))  # type: ignore[return-value]


def _train(api: httpx.Client, n_estimators: int) -> str:
    body = SEED_TRAIN_BODY | {"hyperparameters": {"n_estimators": n_estimators, "max_depth": 4}}
    resp = api.post("/v1/ml/train", json=body)
    assert resp.status_code == 202, resp.text
    final = wait_job(api, resp.json()["job_id"])
    assert final["status"] == "completed", final
    return str(final["model_id"])


@pytest.fixture(scope="module")
def canary(api: httpx.Client) -> Iterator[str]:
    """A canary at 50 % (not automatic: it stays ``monitoring``), ended when the module is done."""
    state = api.get("/v1/ml/deploy/current").json()
    assert state["canary"] is None, state
    if state["production"] is None:  # this module alone: put a model in production first
        prod = _train(api, 30)
        assert api.post("/v1/ml/deploy/staging", json={"model_id": prod}).status_code == 200
        assert api.post("/v1/ml/deploy/production", json={"model_id": prod}).status_code == 200
    model = _train(api, 25)
    assert api.post("/v1/ml/deploy/staging", json={"model_id": model}).status_code == 200
    resp = api.post(
        "/v1/ml/deploy/canary/start",
        json={"model_id": model, "initial_traffic_percentage": 50, "monitoring_duration_minutes": 60},
    )
    assert resp.status_code == 202, resp.text
    canary_id = str(resp.json()["canary_id"])
    try:
        yield canary_id
    finally:
        resp = api.post(f"/v1/ml/deploy/canary/{canary_id}/rollback")
        assert resp.status_code == 200, resp.text


def test_an_error_answer_ends_in_one_readable_line(base_url: str, stack: StackThread, settings: Settings) -> None:
    key, _ = _premium_key(stack, settings)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bootstrap.cli",
            "simulate",
            "canary",
            "--scenario",
            "better",
            "--canary-id",
            "canary_nope",
            "--api-key",
            key,
            "--url",
            base_url,
            "--duration",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    mentions = [line for line in proc.stdout.splitlines() if "CANARY_NOT_FOUND" in line]
    assert mentions == [
        "stopped: error: GET /v1/ml/deploy/canary/canary_nope/status answered 404 CANARY_NOT_FOUND: "
        "no canary 'canary_nope' (field canary_id)"
    ], proc.stdout
    # an unknown key: the API's 401 as one line, in-process this time
    lines: list[str] = []
    result = asyncio.run(simulate(base_url, "mb_not-a-key", "equal", duration_s=5, out=lines.append))
    assert result["ok"] is False and result["stopped_because"].startswith(
        "error: GET /v1/ml/deploy/current answered 401 UNAUTHORIZED"
    ), result
    assert lines[-1] == f"stopped: {result['stopped_because']}"


def test_the_simulator_survives_the_rate_limit_and_says_why_it_stops(
    canary: str, base_url: str, stack: StackThread, settings: Settings, db: Any
) -> None:
    key, key_id = _premium_key(stack, settings)
    # the minute is used up when the simulator starts (as after a first run with the same key): its first
    # request, looking for the running canary, is refused until the next minute
    if (left := 60 - datetime.now(UTC).second) > 15:
        time.sleep(left - 12)
    now = datetime.now(UTC)
    db.rate_limits.update_one(
        {"_id": f"{key_id}:{now:%Y%m%d}"},
        {"$set": {f"m.{now.hour * 60 + now.minute}": PREMIUM_PER_MINUTE}},
        upsert=True,
    )
    wait = 60 - now.second
    lines: list[str] = []
    result = asyncio.run(
        simulate(
            base_url, key, "worse", rps=40, duration_s=wait + 20, label_delay_s=1, report_every_s=3, out=lines.append
        )
    )
    text = "\n".join(lines)
    assert result["canary_id"] == canary, text
    assert result["rate_limited"] >= 1 and "429 RATE_LIMIT_EXCEEDED" in text and "(Retry-After)" in text, text
    assert f"this key may send {PREMIUM_PER_MINUTE} requests a minute" in text, text
    # after the wait it ran on, within the limit, and stopped for a stated reason
    assert result["ok"] is True and result["errors"] == 0, text
    assert result["stopped_because"].startswith("duration over"), result
    assert lines[-1] == f"stopped: {result['stopped_because']}"
    assert result["predictions"] > 200 and result["feedback"] > 0, result
    assert any(line.startswith("[canary monitoring 50%]") for line in lines), text
    assert result["rate_limited"] <= 2, text  # paced after the reset: not refused again and again


def test_a_shadow_is_driven_with_production_s_truth(canary: str, api: httpx.Client, base_url: str) -> None:
    """A shadow never changes what callers see: the labels are drawn from production's predictions, and the
    simulator says so when the scenario speaks of a better or worse model."""
    model = _train(api, 15)
    resp = api.post("/v1/ml/deploy/shadow/start", json={"model_id": model})
    assert resp.status_code == 202, resp.text
    shadow_id = str(resp.json()["shadow_id"])
    try:
        lines: list[str] = []
        result = asyncio.run(
            simulate(
                base_url,
                TEST_KEY,
                "better",
                shadow_id=shadow_id,
                rps=40,
                duration_s=6,
                label_delay_s=1,
                report_every_s=2,
                out=lines.append,
            )
        )
        text = "\n".join(lines)
        assert result["shadow_id"] == shadow_id and result["canary_id"] is None, text
        assert result["ok"] is True and result["stopped_because"] == "duration over (6 s)", text
        assert result["predictions"] > 0 and result["feedback"] > 0, text
        assert "shadow: the truth is drawn from production's predictions" in text, text
        assert "scenario 'better' sets a canary's accuracy, which cannot be imposed on a shadow" in text, text
        assert any(line.startswith("[shadow monitoring]") for line in lines), text
    finally:
        assert api.post(f"/v1/ml/deploy/shadow/{shadow_id}/stop").status_code == 200
    # a stopped shadow: the simulator says so and stops at once
    lines = []
    result = asyncio.run(simulate(base_url, TEST_KEY, "equal", shadow_id=shadow_id, duration_s=30, out=lines.append))
    assert result["ok"] is True and result["stopped_because"].startswith(
        f"shadow {shadow_id} ended with status stopped"
    )
    assert result["predictions"] == 0, lines
