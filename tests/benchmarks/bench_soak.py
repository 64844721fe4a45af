"""Issue 16 item 2: does a long-running embedded stack stay as fast as in its first minutes?

``modelbus up --demo`` (embedded Tansu and SecantusDB, API, serving and background workers), a LightGBM model
in production, then ``SOAK_MINUTES`` (30 by default; ``BENCH_SOAK_MINUTES`` or the first argument) of
``POST /v1/ml/predict`` at 50 requests/s (``BENCH_SOAK_RATE``), open loop, plus one training job a minute.
Per minute: client p50/p99, requests, errors, the RSS and CPU of every process of the stack, and the topic
generations in use. The goal:
the last five minutes' p50 within 1.25x of the first five minutes' (the baseline of the same run), and the
broker's memory bounded. ``MODELBUS_GENERATION_MAX_RECORDS=0`` in the environment runs the same soak without
topic generations. Writes bench-results/soak.json (earlier runs kept under ``previous_runs``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
from aiokafka.admin import AIOKafkaAdminClient

from tests.benchmarks.bench_idle import KEY, PERIOD, cpu_seconds, stack_processes, up_demo

RATE = float(os.environ.get("BENCH_SOAK_RATE", "50"))


def _pct(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    arr = np.asarray(values)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 2), "p99_ms": round(float(np.percentile(arr, 99)), 2),
            "n": len(values)}


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


async def _deploy(session: aiohttp.ClientSession) -> str:
    body = {"model_type": "lightgbm", "data_period": PERIOD, "hyperparameters": {"n_estimators": 50}}
    async with session.post("/v1/ml/train", json=body) as resp:
        job_id = (await resp.json())["job_id"]
    while True:
        async with session.get(f"/v1/ml/train/status/{job_id}") as resp:
            status = await resp.json()
        if status["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.2)
    assert status["status"] == "completed", status
    model_id = status["model_id"]
    for step in ("staging", "production"):
        async with session.post(f"/v1/ml/deploy/{step}", json={"model_id": model_id}) as resp:
            assert resp.status == 200, await resp.text()
    return str(model_id)


async def soak(info: dict[str, Any], root: psutil.Process, minutes: float) -> dict[str, Any]:
    session = aiohttp.ClientSession(info["api_url"], headers={"X-API-Key": KEY},
                                    connector=aiohttp.TCPConnector(limit=1000), timeout=aiohttp.ClientTimeout(total=30))
    rng = np.random.default_rng(7)
    rows = [{"amount": float(a), "hour": int(h), "txn_count_1h": int(c)}
            for a, h, c in zip(rng.lognormal(4, 1, 2000), rng.integers(0, 24, 2000), rng.integers(0, 5, 2000),
                               strict=True)]
    model_id = await _deploy(session)
    await asyncio.sleep(2)
    per_minute: list[dict[str, Any]] = []
    latencies: dict[int, list[float]] = {}
    rpc_ms: dict[int, list[float]] = {}
    worker_ms: dict[int, list[float]] = {}
    errors: dict[int, int] = {}
    jobs: list[str] = []
    start = time.perf_counter()

    def minute() -> int:
        return int((time.perf_counter() - start) // 60)

    async def one(i: int) -> None:
        m = minute()
        t0 = time.perf_counter()
        try:
            async with session.post("/v1/ml/predict", json={"features": rows[i % len(rows)],
                                                            "routing_key": f"user-{i % 5000}"}) as resp:
                body = await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            latencies.setdefault(m, []).append((time.perf_counter() - t0) * 1000)
            # where the time went: the API's round trip over Kafka to the worker and back, the worker's scoring
            with contextlib.suppress(ValueError, KeyError, TypeError):
                answer = json.loads(body)
                rpc_ms.setdefault(m, []).append(float(answer["latency_ms"]))
                worker_ms.setdefault(m, []).append(float(answer["worker_ms"]))
        else:
            errors[m] = errors.get(m, 0) + 1

    async def train_every_minute() -> None:
        body = {"model_type": "lightgbm", "data_period": PERIOD, "hyperparameters": {"n_estimators": 50}}
        while True:
            with contextlib.suppress(Exception):
                async with session.post("/v1/ml/train", json=body) as resp:
                    jobs.append((await resp.json())["job_id"])
            await asyncio.sleep(60)

    async def sample() -> None:
        procs = stack_processes(root)
        last = {name: cpu_seconds(p) for name, p in procs.items()}
        t_last = time.monotonic()
        m = 0
        while True:
            await asyncio.sleep(max(0.0, start + (m + 1) * 60 - time.perf_counter()))
            now = time.monotonic()
            rss, cpu = {}, {}
            for name, p in stack_processes(root).items():
                with contextlib.suppress(psutil.NoSuchProcess):
                    rss[name] = round(p.memory_info().rss / 2**20, 1)
                    used = cpu_seconds(p)
                    cpu[name] = round((used - last.get(name, used)) / (now - t_last) * 100, 1)
                    last[name] = used
            t_last = now
            topics = await _topics(info["kafka_bootstrap"])
            rolled = [t for t in topics if ".predict." in t]
            row = {"minute": m, **_pct(latencies.get(m, [])),
                   "rpc": _pct(rpc_ms.get(m, [])), "worker": _pct(worker_ms.get(m, [])), "errors": errors.get(m, 0),
                   "rss_mb": rss, "cpu_pct": cpu, "predict_topics": rolled}
            per_minute.append(row)
            print(json.dumps({k: row[k] for k in ("minute", "p50_ms", "p99_ms", "n", "errors", "rpc", "worker")}),
                  "broker", rss.get("broker"), "MB", len(rolled), "predict topics", flush=True)
            m += 1

    sampler = asyncio.create_task(sample())
    trainer = asyncio.create_task(train_every_minute())
    # only the requests in flight are kept, so the client's own heap (and the time of its garbage collections)
    # stays flat: session 12's first run, which held all 90,000 finished tasks, saw its p99 grow minute after
    # minute while the stack's CPU stayed flat
    inflight: set[asyncio.Task[None]] = set()
    n = int(RATE * minutes * 60)
    for i in range(n):
        delay = start + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    await asyncio.gather(*inflight)
    await asyncio.sleep(max(0.0, start + (int(minutes) + 1) * 60 - time.perf_counter() + 1))
    trainer.cancel()
    sampler.cancel()
    await asyncio.gather(trainer, sampler, return_exceptions=True)
    completed = 0
    for job_id in jobs:
        async with session.get(f"/v1/ml/train/status/{job_id}") as resp:
            completed += (await resp.json()).get("status") == "completed"
    await session.close()
    whole = int(minutes)
    first_minutes, last_minutes = range(min(5, whole)), range(max(0, whole - 5), whole)

    def pooled(by_minute: dict[int, list[float]], minutes: range) -> list[float]:
        return [v for m in minutes for v in by_minute.get(m, [])]

    first, last = pooled(latencies, first_minutes), pooled(latencies, last_minutes)
    broker_rss = [r["rss_mb"].get("broker") for r in per_minute if r["rss_mb"].get("broker")]
    first5, last5 = _pct(first), _pct(last)
    return {
        "model_id": model_id,
        "rate_rps": RATE,
        "minutes": minutes,
        "training_jobs": {"submitted": len(jobs), "completed": completed},
        "first_5_min": first5,
        "last_5_min": last5,
        "rpc_first_5_min": _pct(pooled(rpc_ms, first_minutes)),
        "rpc_last_5_min": _pct(pooled(rpc_ms, last_minutes)),
        "p50_ratio_last_over_first": round(last5["p50_ms"] / first5["p50_ms"], 3) if first and last else None,
        "goal_p50_ratio": 1.25,
        "errors": sum(errors.values()),
        "broker_rss_mb": {"first": broker_rss[0] if broker_rss else None, "max": max(broker_rss, default=None),
                          "last": broker_rss[-1] if broker_rss else None},
        "per_minute": per_minute,
    }


def main(minutes: str | float | None = None, out_path: str = "bench-results/soak.json") -> dict[str, Any]:
    mins = float(minutes or os.environ.get("BENCH_SOAK_MINUTES", "30"))
    env = {"MODELBUS_RATE_LIMITS_ENABLED": "false"}
    if "MODELBUS_GENERATION_MAX_RECORDS" in os.environ:
        env["MODELBUS_GENERATION_MAX_RECORDS"] = os.environ["MODELBUS_GENERATION_MAX_RECORDS"]
    result: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(),
                              "env": env, "load_average_at_start": os.getloadavg()}
    with up_demo(env) as (info, root):
        time.sleep(20)  # consumer groups settle
        result |= asyncio.run(soak(info, root, mins))
    path = Path(out_path)
    previous: list[Any] = []
    if path.exists():
        with contextlib.suppress(ValueError):
            old = json.loads(path.read_text())
            previous = [*old.pop("previous_runs", []), old]
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**result, "previous_runs": previous}, indent=2))
    return {k: v for k, v in result.items() if k != "per_minute"}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=2))
