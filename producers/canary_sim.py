"""Canary traffic simulator: real predictions through ``POST /v1/ml/predict`` and delayed ground truth
through ``POST /v1/ml/feedback``, so a person can watch ``/v1/ml/deploy/canary/{id}/status`` change.

The true label of each prediction is drawn so that each arm is right with its scenario accuracy
(``better``: canary 95 % vs baseline 90 %, ``worse``: 85 % vs 90 %, ``equal``: 90 % both): the label is
the predicted one with that probability, else the other one. Labels are sent after ``label_delay_s``.
Used by ``modelbus simulate canary --scenario better|worse|equal``."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

ACCURACY = {"better": (0.90, 0.95), "worse": (0.90, 0.85), "equal": (0.90, 0.90)}
"""scenario -> (baseline accuracy, canary accuracy)"""


def record(rng: random.Random, users: int) -> dict[str, Any]:
    amount = rng.lognormvariate(3.5, 1.2)
    return {
        "routing_key": f"user-{rng.randrange(users)}",
        "features": {
            "amount": round(amount, 2),
            "hour": float(rng.randrange(24)),
            "log_amount": round(math.log1p(amount), 4),
        },
    }


async def simulate(
    base_url: str,
    api_key: str,
    scenario: str,
    *,
    canary_id: str | None = None,
    rps: float = 50.0,
    duration_s: float = 300.0,
    label_delay_s: float = 5.0,
    batch: int = 10,
    users: int = 5000,
    seed: int = 7,
    report_every_s: float = 5.0,
    accuracies: tuple[float, float] | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs until ``duration_s`` is over or the canary ends; ``accuracies`` overrides the scenario's."""
    rng = random.Random(seed)
    base_acc, canary_acc = accuracies or ACCURACY[scenario]
    pending: deque[tuple[float, dict[str, Any]]] = deque()
    sent = {"predictions": 0, "feedback": 0, "errors": 0}
    last: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": api_key}, timeout=30) as client:
        if canary_id is None:
            current = (await client.get("/v1/ml/deploy/current")).json()
            canary_id = (current.get("canary") or {}).get("canary_id")
            if canary_id is None:
                raise SystemExit("no canary is running: start one with POST /v1/ml/deploy/canary/start")
        out(f"simulating scenario {scenario!r} on canary {canary_id}: {rps:g} predictions/s for {duration_s:g} s")
        t_end = time.monotonic() + duration_s
        next_report = time.monotonic() + report_every_s
        interval = batch / rps
        while time.monotonic() < t_end:
            tick = time.monotonic()
            resp = await client.post("/v1/ml/predict", json={"records": [record(rng, users) for _ in range(batch)]})
            if resp.status_code != 200:
                sent["errors"] += 1
                out(f"predict answered {resp.status_code}: {resp.text[:200]}")
            else:
                for p in resp.json()["predictions"]:
                    sent["predictions"] += 1
                    if p.get("label") is None:
                        continue
                    acc = canary_acc if p.get("arm") == "canary" else base_acc
                    truth = p["label"] if rng.random() < acc else 1 - p["label"]
                    pending.append((tick + label_delay_s, {"prediction_id": p["prediction_id"], "label": truth}))
            due = []
            while pending and pending[0][0] <= time.monotonic() and len(due) < 1000:
                due.append(pending.popleft()[1])
            if due:
                fb = await client.post("/v1/ml/feedback", json={"feedback": due})
                sent["feedback"] += fb.json().get("accepted", 0) if fb.status_code == 202 else 0
            if time.monotonic() >= next_report:
                next_report += report_every_s
                last = (await client.get(f"/v1/ml/deploy/canary/{canary_id}/status")).json()
                new, old = last["metrics"]["new_model"], last["metrics"]["old_model"]
                out(
                    f"[{last['status']} {last['current_traffic_percentage']:g}%] {last['recommendation']}: "
                    f"new acc={new['accuracy']} n={new['requests']}/{new['labelled']} | "
                    f"old acc={old['accuracy']} n={old['requests']}/{old['labelled']} — {last['reason']}"
                )
                if last["status"] != "monitoring":
                    break
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - tick)))
    return {"canary_id": canary_id, **sent, "last_status": last}
