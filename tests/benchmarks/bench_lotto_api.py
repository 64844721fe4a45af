"""Lotto API benchmark on a real embedded stack (Tansu + SecantusDB, API on a free port, every consumer,
the SYNTHETIC 1,200-draw demo history). Writes ``bench-results/lotto_api.json``.

* statistics through the API: ``GET /api/statistics/machine-analysis/{m}?rounds=1200`` (each machine's
  whole share of the 1,200 draws, ~400 draws, plus the 100-origin backtest of ``performance_metrics``),
  cold (every request a different ``rounds`` value, so the worker computes) and warm (the worker's
  result cache answers);
* ``POST /api/predictions/generate`` with 20 sets, through the API and Kafka request/reply, p50/p99;
* the training time of each ensemble member on one machine through the job pipeline (202 → completed),
  beside the fit time measured inside the training process.

Run: ``.venv/bin/python -m tests.benchmarks.bench_lotto_api [out_path]``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bootstrap.stack import StackThread
from infra.settings import Settings

KEY = "mb_bench-lotto-0123456789abcdefghijklmnopqrstuvwxyz"
MACHINES = ("1호기", "2호기", "3호기")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summary(ms: list[float]) -> dict[str, Any]:
    return {
        "n": len(ms),
        "p50_ms": pct(ms, 0.5),
        "p99_ms": pct(ms, 0.99),
        "mean_ms": round(statistics.mean(ms), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
    }


def timed(client: httpx.Client, method: str, url: str, **kwargs: Any) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    resp = client.request(method, url, **kwargs)
    elapsed = (time.perf_counter() - t0) * 1000
    if resp.status_code >= 400:
        raise RuntimeError(f"{method} {url}: {resp.status_code} {resp.text[:300]}")
    return elapsed, resp


def bench_statistics(client: httpx.Client, cold_n: int = 15, warm_n: int = 60) -> dict[str, Any]:
    cold: list[float] = []
    draws: list[int] = []
    for i in range(cold_n):
        machine = MACHINES[i % 3]
        ms, resp = timed(client, "GET", f"/api/statistics/machine-analysis/{machine}", params={"rounds": 1200 - i})
        cold.append(ms)
        draws.append(resp.json()["analysis_period"]["total_rounds"])
    warm = [
        timed(client, "GET", f"/api/statistics/machine-analysis/{MACHINES[i % 3]}", params={"rounds": 1200})[0]
        for i in range(warm_n)
    ]
    return {
        "endpoint": "GET /api/statistics/machine-analysis/{machine_type}?rounds=1200",
        "history_draws": 1200,
        "draws_analysed_per_request": sorted(set(draws)),
        "backtest_origins_per_request": 100,
        "cold_worker_computes": summary(cold),
        "warm_worker_cache": summary(warm),
    }


def bench_generate(client: httpx.Client, n: int = 200) -> dict[str, Any]:
    for machine in MACHINES:  # warm-up: draws cached in the worker, connections open
        timed(client, "POST", "/api/predictions/generate", json={"machine_type": machine, "sets_count": 20})
    out: dict[str, Any] = {"endpoint": "POST /api/predictions/generate (sets_count 20, over Kafka request/reply)"}
    for algorithm, count in (("enhanced", n), ("basic", n // 4), ("premium", n // 4)):
        ms = []
        for i in range(count):
            body = {"machine_type": MACHINES[i % 3], "sets_count": 20, "algorithm": algorithm}
            elapsed, resp = timed(client, "POST", "/api/predictions/generate", json=body)
            ms.append(elapsed)
            assert len(resp.json()["predictions"]) == 20
        out[algorithm] = summary(ms)
    return out


def bench_training(client: httpx.Client, machine: str = "1호기") -> dict[str, Any]:
    out: dict[str, Any] = {"machine_type": machine, "parameters": "defaults", "models": {}}
    for model_type in ("enhanced_predictor", "sklearn_ensemble", "pytorch_transformer"):
        t0 = time.perf_counter()
        _, resp = timed(client, "POST", "/api/models/train", json={"machine_type": machine, "model_type": model_type})
        job_id = resp.json()["job_id"]
        while True:
            status = client.get(f"/api/models/train/{job_id}").json()
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        if status["status"] != "completed":
            raise RuntimeError(f"{model_type} training {status['status']}: {status.get('error')}")
        job = client.get(f"/api/models/train/{job_id}").json()
        model = client.get("/api/models", params={"machine_type": machine, "model_type": model_type}).json()
        lineage = model["models"][0]["lineage"]
        out["models"][model_type] = {
            "model_id": job["model_id"],
            "draws": job["draws"],
            "submit_to_completed_seconds": round(wall, 2),
            "fit_seconds_in_process": job["metrics"].get("fit_seconds"),
            "holdout_log_loss": job["metrics"]["holdout_log_loss"],
            "holdout_log_loss_random_baseline": job["metrics"]["holdout_log_loss_random_baseline"],
            "holdout_mean_hits_top6": job["metrics"]["holdout_mean_hits_top6"],
            "holdout_mean_hits_top6_ci95": [
                job["metrics"]["holdout_mean_hits_top6_ci95_low"],
                job["metrics"]["holdout_mean_hits_top6_ci95_high"],
            ],
            "holdout_mean_hits_top6_random_baseline": job["metrics"]["holdout_mean_hits_top6_random_baseline"],
            "artifact_bytes": model["models"][0]["artifact_bytes"],
            "library_versions": lineage.get("library_versions"),
        }
    ms, resp = timed(
        client,
        "POST",
        "/api/ensemble/predictions/",
        json={
            "machine_type": machine,
            "sets_count": 10,
            "models": ["pytorch_transformer", "sklearn_ensemble", "enhanced_predictor"],
        },
    )
    out["first_ensemble_request_ms_including_model_load"] = round(ms, 1)
    ensemble = [
        timed(client, "POST", "/api/ensemble/predictions/", json={"machine_type": machine, "sets_count": 10})[0]
        for _ in range(20)
    ]
    out["ensemble_10_sets_weighted_voting"] = summary(ensemble)
    return out


def main(out_path: str = "bench-results/lotto_api.json") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        # authentication stays on (the key is checked on every request); the per-tier rate limits are off, or the
        # enterprise tier's 1,000 requests a minute would answer 429 to the generation loop
        settings = Settings(
            _env_file=None, data_dir=Path(tmp), port=0, api_key=KEY, log_level="WARNING", rate_limits_enabled=False
        )
        stack = StackThread(settings, demo=True)
        t0 = time.perf_counter()
        stack.start(timeout=300)
        started = time.perf_counter() - t0
        load_before = os.getloadavg()
        try:
            with httpx.Client(base_url=stack.stack.info["api_url"], headers={"X-API-Key": KEY}, timeout=60) as client:
                time.sleep(3)  # let the background import of torch/scikit-learn in the serving worker finish
                result = {
                    "benchmark": "lotto_api",
                    "statistics": bench_statistics(client),
                    "generate_20_sets": bench_generate(client),
                    "training": bench_training(client),
                }
        finally:
            stack.stop()
    result["environment"] = {
        "machine": "2 cores shared with other jobs; embedded Tansu + SecantusDB; API and client in one process (the "
        "client in its own thread), consumers in two worker processes (the `modelbus up` layout), training in a "
        "spawned pool process; API key checked, rate limits off",
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "stack_start_seconds": round(started, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "data": "SYNTHETIC demo history: 1,200 uniform random draws, machines at random",
    }
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=2, ensure_ascii=False))
