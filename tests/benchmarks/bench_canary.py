"""Canary benchmark (issue 13): the verdict's calibration and power by simulation, and the durable analyser
on the embedded stack (throughput, window close → verdict, recovery after ``kill -9``).

Run: ``python -m tests.benchmarks.bench_canary [out_path] [--quick]`` (default ``bench-results/canary.json``).

Figures written:

* ``calibration``: :func:`ml.canary.calibration.scenarios`, 10,000 simulated canaries each, looked at after
  every window (60 windows of 60 s, 20 requests/s, 30 % labelled, label delay median 2 min): A/A stationary
  and drifting (false rollback, false proceed = "proceed" for equal models is *not* an error: the tolerance
  allows it; the error for A/A is a rollback), a canary exactly at the accuracy tolerance (false proceed), and
  the issue's drift scenario (shared accuracy falls 8 points while the canary goes 10 → 50 %); each rate with
  its 95 % Wilson interval;
* ``contrasts``: the same settings with the strata pooled (what modelbus did before) and with a fixed-sample
  95 % interval peeked at every window instead of the confidence sequence;
* ``power``: labels needed for ``rollback`` at 1, 2, 5 and 10 points worse and for ``proceed`` at 2 and 5
  points better, at 10 % and 50 % canary traffic (median and p90 over simulated canaries);
* ``fold_in_process``: prediction records folded and their stratum deltas computed per second, pure Python;
* ``writer_alone``: the record writer (records + strata, one transaction per batch) against an embedded
  SecantusDB with nothing else running;
* ``stack``: the analyser as ``modelbus worker --roles analyser`` beside an embedded stack: served events/s
  folded into MongoDB (records and strata in one transaction per batch), window end → ``canary.metrics`` on
  Kafka (p50/p95), and recovery after ``kill -9`` with 100,000 predictions in the canary's evidence.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pymongo

from bootstrap.stack import StackThread
from bootstrap.wiring import ALL_ROLES
from infra import mongo
from infra.settings import Settings
from ml.canary.analysis import CanaryPolicy
from ml.canary.calibration import CalibrationScenario, labels_needed, scenarios, simulate
from ml.canary.evidence import delta, fold_feedback, fold_served
from schemas import deploy
from schemas.envelope import Envelope
from tests.analyser_process import AnalyserProcess, strata_totals
from tests.benchmarks.canary_events import produce, served_envelopes

DEFAULT_OUT = Path("bench-results/canary.json")
KEY = "mb_bench-canary-0123456789abcdefghijklmnopq"
TRAIN = {
    "model_type": "lightgbm",
    "data_period": {"start_date": "2025-10-01", "end_date": "2025-11-15"},
    "hyperparameters": {"n_estimators": 30, "max_depth": 4},
}


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 1)


def bench_calibration(canaries: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, (name, sc) in enumerate(scenarios(canaries).items()):
        res, seconds = _timed(simulate, sc, seed=100 + i)
        out[name] = res.summary() | {"seconds": seconds}
    return out


def bench_contrasts(canaries: int) -> dict[str, Any]:
    settings = scenarios(canaries)
    out: dict[str, Any] = {}
    for name, sc, kwargs in (
        ("issue_drift_pooled", settings["issue_drift_10_to_50"], {"pooled": True}),
        ("aa_drifting_pooled", settings["aa_drifting"], {"pooled": True}),
        ("aa_stationary_naive_peeking", settings["aa_stationary"], {"naive": True}),
        ("at_tolerance_stationary_naive_peeking", settings["at_tolerance_stationary"], {"naive": True}),
    ):
        res, seconds = _timed(simulate, sc, seed=200, **kwargs)
        out[name] = res.summary() | {"seconds": seconds}
    return out


def bench_power(canaries: int) -> list[dict[str, Any]]:
    """Labels needed per verdict. The rate is chosen so that a verdict takes many looks (labels needed hardly
    depend on it, but the look spacing bounds the smallest figures): 20 requests/s for differences of 5 points
    and more, 200 for 1 and 2 points (so that they are found within the 4-hour horizon). A canary 1 point worse
    is exactly at the default 1-point tolerance, which by definition is not harm: its rows use
    ``accuracy_tolerance=0`` (any drop is harm)."""
    rows = []
    for difference in (-0.01, -0.02, -0.05, -0.10, 0.02, 0.05):
        policy = CanaryPolicy(accuracy_tolerance=0.0) if difference == -0.01 else CanaryPolicy()
        rate = 200.0 if abs(difference) <= 0.02 else 20.0
        for share in (10.0, 50.0):
            row = labels_needed(difference, share, policy=policy, canaries=canaries, requests_per_s=rate, seed=300)
            rows.append(row | {"accuracy_tolerance_pts": policy.accuracy_tolerance * 100, "requests_per_s": rate})
    return rows


def bench_fold(predictions: int = 100_000) -> dict[str, Any]:
    """Records folded (served, then a label for a third) with their stratum deltas, in process."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    served = [
        {"prediction_id": f"p{i}", "model_id": "m", "arm": "canary" if i % 2 else "baseline", "canary_id": "c1",
         "percentage": 50.0, "score": 0.3, "label": i % 2, "latency_ms": 2.5, "served_at": now + timedelta(seconds=i)}
        for i in range(predictions)
    ]
    horizon = {"c1": None}
    t0 = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    for event in served:
        new = fold_served(records.get(event["prediction_id"]), event, event["served_at"])
        if new is not None:
            delta(records.get(event["prediction_id"]), new, horizon.get)
            records[event["prediction_id"]] = new
    for i in range(0, predictions, 3):
        pid = f"p{i}"
        new = fold_feedback(records[pid], i % 2, now)
        if new is not None:
            delta(records[pid], new, horizon.get)
            records[pid] = new
    seconds = time.perf_counter() - t0
    events = predictions + (predictions + 2) // 3
    return {"served": predictions, "events": events, "events_per_s": round(events / seconds),
            "us_per_event": round(seconds / events * 1e6, 2)}


# --- the analyser on the embedded stack ------------------------------------------------------------
def bench_writer(predictions: int = 20_000, batch: int = 5000) -> dict[str, Any]:
    """The record writer alone against an embedded SecantusDB (no broker, nothing else running): events folded
    into records and strata per second, in batches as the analyser takes them from Kafka."""
    from consumers.canary.records import RecordWriter
    from infra.embedded import EmbeddedServers

    envs = [Envelope.from_bytes(raw) for _, _, raw in served_envelopes("c-writer", "old", "new", predictions, 0, 3)]

    async def run(url: str) -> float:
        client = pymongo.AsyncMongoClient(url)
        try:
            db = client["bench_writer"]
            await mongo.ensure_indexes(db)
            writer = RecordWriter(db)
            await writer.start()

            async def open_ended(_names: set[str]) -> Any:
                return lambda _analysis: None

            t0 = time.perf_counter()
            for i in range(0, len(envs), batch):
                await writer.apply(envs[i : i + batch], open_ended)
            seconds = time.perf_counter() - t0
            await writer.stop()
            return seconds
        finally:
            await client.close()

    with tempfile.TemporaryDirectory() as tmp:
        servers = EmbeddedServers(Path(tmp), archive=False)
        servers.start()
        try:
            seconds = asyncio.run(run(servers.mongodb_url))
        finally:
            servers.stop()
    return {"events": len(envs), "served": predictions, "batch": batch, "events_per_s": round(len(envs) / seconds)}


async def _metrics_events(settings: Settings, canary_id: str) -> list[tuple[datetime, deploy.CanaryMetrics]]:
    """Every ``canary.metrics`` event of the canary in the archive: (publication time, payload)."""
    client = mongo.client(settings, archive=True)
    try:
        out = []
        cursor = client[settings.mongodb_db][mongo.ARCHIVE].find({"topic": "canary.metrics", "subject": canary_id})
        async for doc in cursor:
            env = Envelope.from_bytes(doc["raw"])
            out.append((env.time, deploy.CanaryMetrics.model_validate(env.data)))
        return out
    finally:
        await client.close()


def _requests(metrics: deploy.CanaryMetrics) -> int:
    return int(metrics.totals["canary"]["requests"] + metrics.totals["baseline"]["requests"])


def _cpu_by_process() -> dict[str, float]:
    """CPU seconds of this process and every descendant, by a short name."""
    out: dict[str, float] = {}
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            cmd = proc.cmdline()
            times = proc.cpu_times()
        except psutil.Error:
            continue
        text = " ".join(cmd)
        name = ("bench (stack thread: API, serving, projector, archive, training; producer)" if proc.pid == me.pid
                else "analyser" if "--roles" in text else "tansu" if "tansu" in text
                else "secantusdb archive" if "archive" in text else "secantusdb" if "secantus" in text.lower()
                else proc.name())
        out[name] = out.get(name, 0.0) + times.user + times.system
    return out


def _pct(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values)
    return {"p50_ms": round(float(np.percentile(arr, 50)), 1), "p95_ms": round(float(np.percentile(arr, 95)), 1),
            "n": len(values)}


def bench_stack(predictions: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp), port=0, api_key=KEY, demo_records_per_day=120,
                            train_processes=1, worker_layout="inline", rate_limits_enabled=False,
                            log_level="WARNING")
        thread = StackThread(settings, demo=True, roles=tuple(r for r in ALL_ROLES if r != "analyser"))
        thread.start(timeout=180)
        analyser = AnalyserProcess(thread.stack.settings, Path(tmp) / "analyser.log")
        try:
            analyser.start()
            return asyncio.run(_stack_run(thread, analyser, predictions))
        finally:
            analyser.stop()
            thread.stop()


async def _stack_run(thread: StackThread, analyser: AnalyserProcess, predictions: int) -> dict[str, Any]:
    settings = thread.stack.settings
    async with httpx.AsyncClient(base_url=thread.stack.info["api_url"], headers={"X-API-Key": KEY},
                                 timeout=60) as api:
        models = []
        for seed in (1, 2):
            job = (await api.post("/v1/ml/train", json=TRAIN | {"hyperparameters": TRAIN["hyperparameters"]
                                                                  | {"seed": seed}})).json()["job_id"]
            while (status := (await api.get(f"/v1/ml/train/status/{job}")).json())["status"] not in (
                    "completed", "failed", "cancelled"):
                await asyncio.sleep(0.2)
            assert status["status"] == "completed", status
            models.append(status["model_id"])
        old, new = models
        for step, model in (("staging", old), ("production", old), ("staging", new)):
            assert (await api.post(f"/v1/ml/deploy/{step}", json={"model_id": model})).status_code == 200
        resp = await api.post("/v1/ml/deploy/canary/start", json={
            "model_id": new, "initial_traffic_percentage": 50,
            "policy": {"window_seconds": 1, "min_requests": 10**9, "min_labelled": 10**9}})
        assert resp.status_code == 202, resp.text
        canary_id = resp.json()["canary_id"]
        messages = served_envelopes(canary_id, old, new, predictions, 0, seed=1)
        assert analyser.proc is not None
        proc = psutil.Process(analyser.proc.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        everyone0 = _cpu_by_process()
        t0 = time.perf_counter()
        produce_s = await produce(settings, messages)
        want_labelled = (predictions + 2) // 3
        deadline = time.perf_counter() + 600
        counted = (0, 0)
        while counted[0] < predictions and time.perf_counter() < deadline:
            counted = strata_totals(settings, canary_id)
            await asyncio.sleep(0.1)
        fold_s = time.perf_counter() - t0
        while counted[1] < want_labelled and time.perf_counter() < deadline:
            counted = strata_totals(settings, canary_id)
            await asyncio.sleep(0.1)
        all_s = time.perf_counter() - t0
        analyser_cpu = sum(proc.cpu_times()[:2]) - cpu0
        everyone = {k: round((v - everyone0.get(k, 0.0)) / all_s, 2) for k, v in _cpu_by_process().items()}
        await asyncio.sleep(3)  # the last windows close and are archived
        lags = [(at - m.window_end).total_seconds() * 1000 for at, m in await _metrics_events(settings, canary_id)]

        # recovery: kill -9, restart; then one more prediction: time until a verdict counts all of them
        analyser.kill9()
        restart = time.perf_counter()
        await asyncio.to_thread(analyser.start)
        ready_s = time.perf_counter() - restart
        status = (await api.get(f"/v1/ml/deploy/canary/{canary_id}/status")).json()
        status_counts = status["metrics"]["new_model"]["requests"] + status["metrics"]["old_model"]["requests"]
        await produce(settings, served_envelopes(canary_id, old, new, 1, predictions, seed=2)[:1])
        first = None
        deadline = time.perf_counter() + 120
        while first is None and time.perf_counter() < deadline:
            if any(_requests(m) == predictions + 1 for _, m in await _metrics_events(settings, canary_id)):
                first = time.perf_counter()
            await asyncio.sleep(0.1)
        return {
            "predictions": predictions,
            "feedback": want_labelled,
            "served_events_produced_s": round(produce_s, 2),
            "served_counted": counted[0],
            "labelled_counted": counted[1],
            "served_events_per_s": round(predictions / fold_s),
            "all_events_per_s": round((predictions + want_labelled) / all_s),
            "analyser_cpu_share_of_one_core": round(analyser_cpu / all_s, 2),
            "analyser_cpu_us_per_event": round(analyser_cpu / (predictions + want_labelled) * 1e6),
            "cpu_share_of_one_core_by_process": everyone,
            "window_seconds": 1,
            "window_end_to_canary_metrics": _pct(lags),
            "recovery": {
                "kill": "SIGKILL of `modelbus worker --roles analyser`",
                "restart_to_ready_s": round(ready_s, 2),
                "status_counts_right_after_restart": status_counts,
                "restart_to_verdict_counting_all_and_one_more_s": round(first - restart, 2) if first else None,
                "why_ready_takes_long": "the new consumer's JoinGroup waits for the killed member's session to "
                                        "expire (Kafka semantics; Tansu holds the JoinGroup)",
            },
            "note": "one process per role group: the analyser alone in its process; Tansu, SecantusDB, the API "
                    "and the other consumers (in this process's stack thread) on the same 2 cores",
        }


def main(out_path: str | Path = DEFAULT_OUT, *, quick: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    canaries = 1000 if quick else 10_000
    result: dict[str, Any] = {
        "benchmark": "canary",
        "when": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "quick": quick,
        "setting": CalibrationScenario(name="defaults").model_dump(exclude={"name", "schedule"}),
    }
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        result["seconds"] = round(time.perf_counter() - started, 1)
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    result["calibration"] = bench_calibration(canaries)
    save()
    result["contrasts"] = bench_contrasts(canaries // 5)
    save()
    result["power"] = bench_power(500 if quick else 2000)
    save()
    result["fold_in_process"] = bench_fold(20_000 if quick else 100_000)
    save()
    result["writer_alone"] = bench_writer(5000 if quick else 20_000)
    save()
    result["stack"] = bench_stack(20_000 if quick else 100_000)
    save()
    return result


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(json.dumps(main(args[0] if args else DEFAULT_OUT, quick="--quick" in sys.argv), indent=2))
