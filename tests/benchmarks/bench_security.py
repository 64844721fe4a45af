"""Issue 5 benchmark: a GET with authentication and rate limiting against the same GET with both
disabled, on the embedded stack (two API instances on one database). Writes bench-results/security.json."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bootstrap.stack import Stack
from bootstrap.wiring import app as create_app
from infra.settings import Settings

KEY = "mb_bench-key-0123456789abcdefghijklmnopqrstu"


async def _serve(settings: Settings) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return server, task, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


async def _latencies(url: str, n: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as client:
        for _ in range(50):
            await client.get("/v1/ml/train/history", params={"limit": 1})
        for _ in range(n):
            t = time.perf_counter()
            resp = await client.get("/v1/ml/train/history", params={"limit": 1})
            out.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200, resp.text
    return out


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(ordered[len(ordered) // 2], 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 3),
        "mean_ms": round(statistics.mean(values), 3),
    }


async def run(out_path: Path, n: int = 800) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Settings(_env_file=None, data_dir=Path(tmp), port=0, api_key=KEY), with_api=False)
        await stack.start()
        try:
            secured = stack.settings
            open_ = secured.model_copy(update={"auth_enabled": False, "rate_limits_enabled": False})
            results: dict[str, Any] = {}
            for name, settings in (("auth_and_rate_limits", secured), ("both_disabled", open_)):
                server, task, url = await _serve(settings)
                try:
                    results[name] = _stats(await _latencies(url, n))
                finally:
                    server.should_exit = True
                    await task
            results["ratio_p50"] = round(
                results["auth_and_rate_limits"]["p50_ms"] / results["both_disabled"]["p50_ms"], 3
            )
            results["ratio_mean"] = round(
                results["auth_and_rate_limits"]["mean_ms"] / results["both_disabled"]["mean_ms"], 3
            )
            results["target_ratio"] = 1.15
            results["route"] = "GET /v1/ml/train/history?limit=1 (enterprise key; sequential requests)"
            results["what_the_limits_cost"] = (
                "enterprise: one MongoDB find_one_and_update per 20 requests (units of the shared minute counter "
                "and a block of 10 in-flight slots, leased per API process); free and premium tiers: one "
                "find_one_and_update per request plus a background slot release"
            )
        finally:
            await stack.stop()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2))
    return results


def main(out_path: str = "bench-results/security.json") -> dict[str, Any]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one log line per request would load the client
    return asyncio.run(run(Path(out_path)))


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), indent=2))
