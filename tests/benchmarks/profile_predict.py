"""Where a prediction's CPU goes (issue 16): runs `modelbus up`, puts a LightGBM model in production, drives
``POST /v1/ml/predict`` (``single``: one record per request at a fixed rate; ``bulk``: 1,000 records per request,
back to back) and samples the API and serving worker processes with py-spy meanwhile. Writes each process's
collapsed stacks and a summary of the heaviest functions (own time and including callees) to
bench-results/profiles/. Usage:
``python -m tests.benchmarks.profile_predict single|bulk [seconds] [rate] [MODELBUS_X=value ...]``; more py-spy
options in ``PROFILE_PY_SPY_ARGS`` (``--gil``: only the thread holding the GIL, ``--native``: C frames too)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from infra import mongo
from infra.tabular.records import insert_records
from ml.tabular.synthetic import transactions
from tests.benchmarks.bench_predict import KEY, _train_and_deploy
from tests.benchmarks.upstack import cpu_seconds, modelbus_up, stack_processes

OUT = Path("bench-results/profiles")
PROFILED = ("api", "serving", "background")
PY_SPY = str(Path(sys.executable).parent / "py-spy")


def summarise(raw: Path, top: int = 25) -> dict[str, Any]:
    """Collapsed stacks -> share of samples per function, own and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * n / max(1, total), 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "own_percent": share(own), "inclusive_percent": share(inclusive)}


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads by kind: ``main`` (the event loop), librdkafka's threads by their
    names (``rdk:main``, ``rdk:broker<N>``...), ``other`` (Python's other threads: the threads that poll librdkafka,
    uvicorn's, pymongo's...). Linux only: ``/proc/<pid>/task/<tid>/schedstat``, in nanoseconds (``stat`` counts
    10 ms ticks, too coarse for a few thousand requests)."""
    out: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds = int((task / "schedstat").read_text().split()[0]) / 1e9
            comm = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        kind = "main" if task.name == str(pid) else comm if comm.startswith("rdk:") else "other"
        out[re.sub(r"\d+$", "N", kind)] += seconds
    return dict(out)


async def _drive(mode: str, api_url: str, rows: list[dict[str, Any]], seconds: float, rate: float) -> int:
    sent = 0
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as session:
        deadline = time.monotonic() + seconds
        if mode == "bulk":
            body = {"records": [{"features": r} for r in rows[:1000]]}
            while time.monotonic() < deadline:
                async with session.post(f"{api_url}/v1/ml/predict", json=body) as resp:
                    assert resp.status == 200, await resp.text()
                sent += 1
            return sent
        tasks = []
        start = time.monotonic()
        while time.monotonic() < deadline:
            body = {"features": rows[sent % 1000]}
            tasks.append(asyncio.create_task(session.post(f"{api_url}/v1/ml/predict", json=body)))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        for resp in await asyncio.gather(*tasks):
            assert resp.status == 200
            resp.release()
        return sent


def main(mode: str = "single", seconds: str = "20", rate: str = "100", *settings_env: str) -> dict[str, Any]:
    """``settings_env``: ``MODELBUS_X=value`` settings for the stack (e.g. another fetch wait)."""
    OUT.mkdir(parents=True, exist_ok=True)
    extra = dict(item.split("=", 1) for item in settings_env)
    with modelbus_up(KEY, MODELBUS_RATE_LIMITS_ENABLED="false", **extra) as (info, settings):
        time.sleep(6)

        async def prepare() -> list[dict[str, Any]]:
            db = mongo.client(settings)[settings.mongodb_db]
            records = transactions(date(2024, 1, 1), date(2024, 1, 30), per_day=400, seed=5)
            await insert_records(db, records, source="profile")
            async with httpx.AsyncClient(base_url=info["api_url"], headers={"X-API-Key": KEY}, timeout=30) as c:
                model_id = await _train_and_deploy(c, {"start_date": "2024-01-01", "end_date": "2024-01-30"}, 100)
                assert (await c.post("/v1/ml/deploy/production", json={"model_id": model_id})).status_code == 200
                for _ in range(50):
                    await c.post("/v1/ml/predict", json={"features": records[0]["features"]})
            return [r["features"] for r in records[:1000]]

        rows = asyncio.run(prepare())
        time.sleep(2)
        pids = stack_processes()
        targets = {name: pids[name][0] for name in PROFILED if pids.get(name)}
        targets |= {f"database{i}": pid for i, pid in enumerate(pids.get("databases", []))}  # SecantusDB: Python
        spies = {
            name: subprocess.Popen(
                [
                    PY_SPY,
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    seconds,
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "--nonblocking",
                    *os.environ.get("PROFILE_PY_SPY_ARGS", "").split(),
                    "-o",
                    str(OUT / f"{mode}-{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in targets.items()
        }
        cpu0 = cpu_seconds(pids)
        threads0 = {name: thread_cpu(pids[name][0]) for name in ("api", "serving") if pids.get(name)}
        sent = asyncio.run(_drive(mode, info["api_url"], rows, float(seconds), float(rate)))
        time.sleep(3)  # what the requests left to do downstream (served events, archive) is counted too
        cpu = {name: c - cpu0[name] for name, c in cpu_seconds(pids).items()}
        threads = {
            name: {
                k: round(1000 * (v - before.get(k, 0.0)) / max(1, sent), 3)
                for k, v in thread_cpu(pids[name][0]).items()
            }
            for name, before in threads0.items()
        }
        for spy in spies.values():
            spy.wait(60)
    records = sent * (1000 if mode == "bulk" else 1)
    result = {
        "mode": mode,
        "settings": extra,
        "requests": sent,
        "cpu_ms_per_request": {name: round(1000 * c / max(1, sent), 3) for name, c in cpu.items()},
        "cpu_ms_per_record": {name: round(1000 * c / max(1, records), 4) for name, c in cpu.items()},
        "cpu_ms_per_request_by_thread": threads,
        "profiles": {name: summarise(OUT / f"{mode}-{name}.txt") for name in spies},
    }
    (OUT / f"{mode}-summary.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=2))
