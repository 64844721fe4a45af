"""Issue 16 item 1: what an idle ``modelbus up --demo`` costs, and how fast it wakes.

For each configuration (``baseline``: the polling of before issue 16, i.e. ``MODELBUS_IDLE_FETCH_MAX_WAIT_MS=0``;
``idle``: the defaults) a fresh stack is started as ``make run`` starts it and measured:

- ``fresh_idle``: CPU time of every process of the stack (broker, both SecantusDB daemons, API, both worker
  processes) over 60 s with ``psutil``, after the consumer groups settle, as % of one core;
- then a LightGBM model is trained on the demo period and put in production, 20 predictions warm the path,
  the stack is left alone for ``IDLE_MINUTES`` (10 by default, ``BENCH_IDLE_MINUTES`` or the first argument),
  the CPU of its last 60 s is measured again (``after_traffic_idle``), and the first ``POST /v1/ml/predict``
  after the pause is timed (goal: < 100 ms), then 20 more one after another.

Writes bench-results/idle.json (earlier runs are kept under ``previous_runs``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from tests.benchmarks.upstack import free_port

KEY = "mb_bench-key-0123456789abcdefghijklmnopqrstu"
PERIOD = {"start_date": "2025-10-01", "end_date": "2025-11-15"}
CONFIGS: dict[str, dict[str, str]] = {
    "baseline": {"MODELBUS_IDLE_FETCH_MAX_WAIT_MS": "0"},
    "idle": {},
}


@contextlib.contextmanager
def up_demo(env: dict[str, str], *, ready_timeout_s: float = 300) -> Iterator[tuple[dict[str, Any], psutil.Process]]:
    """``modelbus up --demo`` in a subprocess (what ``make run`` runs); yields stack.json and its process."""
    with tempfile.TemporaryDirectory() as tmp:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELBUS_")}
        child_env |= {"MODELBUS_API_KEY": KEY, "MODELBUS_LOG_LEVEL": "WARNING", "MODELBUS_LOG_JSON": "true", **env}
        log = (Path(tmp) / "up.log").open("wb")
        cmd = [sys.executable, "-m", "bootstrap.cli", "up", "--demo", "--port", str(free_port())]
        proc = subprocess.Popen(cmd + ["--data-dir", str(Path(tmp) / "data")], stdout=log, stderr=subprocess.STDOUT,
                                env=child_env)
        try:
            stack_file = Path(tmp) / "data" / "stack.json"
            deadline = time.monotonic() + ready_timeout_s
            while not stack_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"modelbus up did not start: {(Path(tmp) / 'up.log').read_text()[-3000:]}")
                time.sleep(0.2)
            yield json.loads(stack_file.read_text()), psutil.Process(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def label(p: psutil.Process, root: psutil.Process) -> str:
    if p.pid == root.pid:
        return "api"
    cmd = " ".join(p.cmdline())
    if "tansu" in cmd:
        return "broker"
    if "secantus" in cmd:
        return "secantus-archive" if "/archive" in cmd else "secantus"
    if "worker" in cmd:
        return "worker-serving" if "serving" in cmd.split("--roles", 1)[-1].split()[:1] else "worker-background"
    return f"{p.name()}-{p.pid}"


def stack_processes(root: psutil.Process) -> dict[str, psutil.Process]:
    return {label(p, root): p for p in [root, *root.children(recursive=True)]}


def cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def measure_cpu(root: psutil.Process, seconds: float) -> dict[str, Any]:
    """% of one core per process of the stack over ``seconds`` (CPU time of each process, not wall share)."""
    procs = stack_processes(root)
    before = {name: cpu_seconds(p) for name, p in procs.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    per: dict[str, float] = {}
    for name, p in procs.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            per[name] = round((cpu_seconds(p) - before[name]) / wall * 100, 2)
    rss = {}
    for name, p in procs.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            rss[name] = round(p.memory_info().rss / 2**20, 1)
    return {"seconds": round(wall, 1), "total_pct_of_one_core": round(sum(per.values()), 2), "per_process_pct": per,
            "rss_mb": rss}


async def _predict(client: httpx.AsyncClient, features: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    resp = await client.post("/v1/ml/predict", json={"features": features})
    ms = (time.perf_counter() - t0) * 1000
    assert resp.status_code == 200, resp.text
    return ms


async def _deploy(client: httpx.AsyncClient) -> dict[str, Any]:
    body = {"model_type": "lightgbm", "data_period": PERIOD, "hyperparameters": {"n_estimators": 20}}
    job_id = (await client.post("/v1/ml/train", json=body)).json()["job_id"]
    while (status := (await client.get(f"/v1/ml/train/status/{job_id}")).json())["status"] not in (
        "completed", "failed", "cancelled"
    ):
        await asyncio.sleep(0.2)
    assert status["status"] == "completed", status
    model_id = status["model_id"]
    assert (await client.post("/v1/ml/deploy/staging", json={"model_id": model_id})).status_code == 200
    assert (await client.post("/v1/ml/deploy/production", json={"model_id": model_id})).status_code == 200
    doc = (await client.get(f"/v1/ml/models/{model_id}")).json()
    return {"model_id": model_id, "features": doc.get("feature_names") or doc.get("features")}


def run_config(name: str, env: dict[str, str], idle_minutes: float) -> dict[str, Any]:
    out: dict[str, Any] = {"config": name, "env": env}
    with up_demo(env) as (info, root):
        time.sleep(30)  # consumer groups settle (a join takes ~5 s on Tansu), the training pool imports
        out["fresh_idle"] = measure_cpu(root, 60)
        print(name, "fresh idle", out["fresh_idle"]["total_pct_of_one_core"], out["fresh_idle"]["per_process_pct"],
              flush=True)

        async def traffic() -> tuple[httpx.AsyncClient, dict[str, Any], list[float]]:
            client = httpx.AsyncClient(base_url=info["api_url"], headers={"X-API-Key": KEY}, timeout=30)
            model = await _deploy(client)
            await asyncio.sleep(1)
            features = {"amount": 120.5, "hour": 10}
            warm = [await _predict(client, features) for _ in range(20)]
            await client.aclose()
            return model, features, warm

        model, features, warm = asyncio.run(traffic())
        out["model"] = model["model_id"]
        out["warm_predictions_ms"] = [round(v, 2) for v in warm]
        out["warm_p50_ms"] = round(float(np.median(warm)), 2)
        pause = idle_minutes * 60
        out["idle_minutes"] = idle_minutes
        time.sleep(max(0.0, pause - 60))
        out["after_traffic_idle"] = measure_cpu(root, min(60.0, pause))
        print(name, "idle after traffic", out["after_traffic_idle"]["total_pct_of_one_core"], flush=True)

        async def wake() -> list[float]:
            async with httpx.AsyncClient(base_url=info["api_url"], headers={"X-API-Key": KEY}, timeout=30) as client:
                await client.get("/health")  # the TCP connection, not the request/reply path
                return [await _predict(client, features) for _ in range(21)]

        times = asyncio.run(wake())
        out["first_request_after_idle_ms"] = round(times[0], 2)
        out["next_20_p50_ms"] = round(float(np.median(times[1:])), 2)
        out["next_20_ms"] = [round(v, 2) for v in times[1:]]
        print(name, "first after idle", out["first_request_after_idle_ms"], "next p50", out["next_20_p50_ms"],
              flush=True)
    return out


def main(idle_minutes: str | float | None = None, out_path: str = "bench-results/idle.json",
         configs: str = "baseline,idle", baseline_minutes: str | float | None = None) -> dict[str, Any]:
    """``baseline_minutes``: the pause of the baseline stack (``BENCH_IDLE_BASELINE_MINUTES``; default the same
    as the others): it polls every few milliseconds whether or not it was idle, so a shorter pause saves time."""
    minutes = float(idle_minutes or os.environ.get("BENCH_IDLE_MINUTES", "10"))
    base_minutes = float(baseline_minutes or os.environ.get("BENCH_IDLE_BASELINE_MINUTES", minutes))
    result: dict[str, Any] = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cores": os.cpu_count(),
                              "load_average_at_start": os.getloadavg(), "runs": []}
    for name in configs.split(","):
        result["runs"].append(run_config(name, CONFIGS[name], base_minutes if name == "baseline" else minutes))
    path = Path(out_path)
    previous: list[Any] = []
    if path.exists():
        with contextlib.suppress(ValueError):
            old = json.loads(path.read_text())
            previous = [*old.pop("previous_runs", []), old]
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**result, "previous_runs": previous}, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=2))
