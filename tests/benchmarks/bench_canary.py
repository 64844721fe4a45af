"""Canary benchmark: aggregator throughput, window-close-to-verdict latency, and the verdict's error rates.

Run: ``python -m tests.benchmarks.bench_canary [out_path] [--quick]`` (default ``bench-results/canary.json``).

Figures written:

* ``throughput``: served events per second through :class:`CanaryAggregator` (30 % of predictions
  labelled, so ~1.3 events per served prediction), in process, events pre-built;
* ``memory``: bytes of join state per tracked prediction (tracemalloc);
* ``close_to_verdict_ms``: ``close_window`` + ``totals`` + ``decide`` after each window of a
  100 requests/s canary (and ``decide`` alone);
* ``simulation_levels``: time per simulated window, events through the aggregator vs counts;
* ``false_rollbacks_equal``: equal models, the full sequential procedure (verdict after every
  window, traffic steps followed, stop at the first rollback), 200 canaries, through the
  aggregator (event level) and as counts;
* ``boundary``: a canary exactly at the accuracy tolerance (1 pt worse), 10 % traffic, 60 looks:
  rollbacks with the confidence sequence vs a fixed-sample 95 % interval peeked at every window;
* ``power``: labelled predictions needed to detect +/-5 pts at the default settings, analytic
  and simulated.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.canary.aggregator import CanaryAggregator, FeedbackEvent, ServedEvent
from ml.canary.analysis import CanaryPolicy, decide
from ml.canary.simulation import CanarySimParams, CanarySimulator, run_canary, scenario
from ml.canary.stats import mixture_radius

DEFAULT_OUT = Path("bench-results/canary.json")


def _events(served_target: int, seed: int = 1) -> list[ServedEvent | FeedbackEvent]:
    """At least ``served_target`` served predictions (200 requests/s, 25 % canary), 30 % of them labelled.

    Labels come 10 s (median) after their prediction so that nearly all of them are in the stream.
    """
    params = scenario("equal", requests_per_s=200.0, label_fraction=0.3, label_delay_median_s=10.0)
    sim = CanarySimulator(params, seed=seed, canary_percentage=25)
    events: list[ServedEvent | FeedbackEvent] = []
    served = 0
    while served < served_target:
        batch = sim.advance(60)
        events.extend(batch)
        served += sum(isinstance(event, ServedEvent) for event in batch)
    return events


def bench_throughput(served_target: int = 200_000, repeats: int = 3) -> dict[str, Any]:
    events = _events(served_target)
    n_served = sum(isinstance(e, ServedEvent) for e in events)
    rates = []
    for _ in range(repeats):
        aggregator = CanaryAggregator()
        start = time.perf_counter()
        for event in events:
            aggregator.add(event)
        rates.append(time.perf_counter() - start)
    best = min(rates)
    return {
        "served_events": n_served,
        "feedback_events": len(events) - n_served,
        "labelled_share": round((len(events) - n_served) / n_served, 3),
        "served_per_s": round(n_served / best),
        "events_per_s": round(len(events) / best),
        "us_per_event": round(best / len(events) * 1e6, 2),
        "seconds_best_of": repeats,
    }


def bench_memory(served_target: int = 50_000) -> dict[str, Any]:
    events = _events(served_target, seed=2)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    aggregator = CanaryAggregator()
    aggregator.add_many(events)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    tracked = aggregator.pending()["tracked_predictions"]
    return {
        "tracked_predictions": tracked,
        "bytes_total": grown,
        "bytes_per_tracked_prediction": round(grown / tracked),
        "default_cap": aggregator.config.max_tracked_predictions,
        "estimated_mb_at_cap": round(grown / tracked * aggregator.config.max_tracked_predictions / 2**20),
    }


def bench_close_to_verdict(windows: int = 30, rps: float = 100.0) -> dict[str, Any]:
    params = scenario("better", requests_per_s=rps)
    sim = CanarySimulator(params, seed=3, canary_percentage=25)
    aggregator = CanaryAggregator()
    policy = CanaryPolicy()
    timings, decide_only = [], []
    for _ in range(windows):
        aggregator.add_many(sim.advance(60))
        start = time.perf_counter()
        aggregator.close_window(sim.now)
        totals = aggregator.totals()
        middle = time.perf_counter()
        decide(totals["baseline"], totals["canary"], policy, current_percentage=25)
        end = time.perf_counter()
        timings.append((end - start) * 1e3)
        decide_only.append((end - middle) * 1e3)
    timings.sort()
    return {
        "requests_per_s": rps,
        "window_s": 60,
        "windows": windows,
        "served_in_state": aggregator.counters["served"],
        "p50_ms": round(statistics.median(timings), 3),
        "p95_ms": round(timings[math.ceil(0.95 * len(timings)) - 1], 3),
        "max_ms": round(timings[-1], 3),
        "decide_only_p50_ms": round(statistics.median(decide_only), 3),
    }


def bench_simulation_levels(windows: int = 20) -> dict[str, Any]:
    """Time per simulated 60 s window (20 requests/s): events through the aggregator vs counts."""
    sim = CanarySimulator(scenario("equal"), seed=4)
    aggregator = CanaryAggregator()
    start = time.perf_counter()
    for _ in range(windows):
        aggregator.add_many(sim.advance(60))
        aggregator.close_window(sim.now)
        aggregator.totals()
    events_ms = (time.perf_counter() - start) / windows * 1e3
    sim = CanarySimulator(scenario("equal"), seed=4)
    start = time.perf_counter()
    for _ in range(windows):
        sim.advance_totals(60)
    counts_ms = (time.perf_counter() - start) / windows * 1e3
    return {"events_ms_per_window": round(events_ms, 2), "counts_ms_per_window": round(counts_ms, 3),
            "speedup": round(events_ms / counts_ms, 1)}


def _outcome(args: tuple[CanarySimParams, int, int, str]) -> tuple[str, int, int]:
    params, seed, windows, level = args
    run = run_canary(params, seed=seed, max_windows=windows, level=level)  # type: ignore[arg-type]
    return run.outcome, run.windows, run.labelled[1]


def bench_false_rollbacks(canaries: int = 200, quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    levels = [("counts", 60)] if quick else [("counts", 60), ("events", 30)]
    for level, windows in levels:
        jobs = [(scenario("equal"), seed, windows, level) for seed in range(canaries)]
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(_outcome, jobs, chunksize=10))
        outcomes = [r[0] for r in results]
        out[level] = {
            "canaries": canaries,
            "max_windows": windows,
            "requests_per_s": 20.0,
            "rollbacks": outcomes.count("rollback"),
            "rate": outcomes.count("rollback") / canaries,
            "promoted": outcomes.count("proceed"),
            "still_holding": outcomes.count("hold"),
            "verdicts_checked": sum(r[1] for r in results),
            "seconds": round(time.perf_counter() - start, 1),
        }
    return out


def bench_boundary(canaries: int = 500, windows: int = 60) -> dict[str, Any]:
    """Canary 1 pt less accurate (the tolerance exactly), 10 % traffic: rollbacks, CS vs naive peeking."""
    policy = CanaryPolicy()
    ours = naive = 0
    for seed in range(canaries):
        sim = CanarySimulator(scenario("equal", canary_accuracy=0.89), seed=10_000 + seed, canary_percentage=10)
        ours_hit = naive_hit = False
        for _ in range(windows):
            arms = sim.advance_totals(60)
            b, c = arms["baseline"], arms["canary"]
            ours_hit = ours_hit or decide(b, c, policy).recommendation == "rollback"
            if min(b.labelled, c.labelled) >= policy.min_labelled and not naive_hit:
                pb, pc = b.correct / b.labelled, c.correct / c.labelled
                se = math.sqrt(pb * (1 - pb) / b.labelled + pc * (1 - pc) / c.labelled)
                naive_hit = pc - pb + 1.96 * se < -policy.accuracy_tolerance
        ours += ours_hit
        naive += naive_hit
    return {
        "canaries": canaries,
        "windows": windows,
        "canary_accuracy": 0.89,
        "baseline_accuracy": 0.90,
        "confidence_sequence_rollbacks": ours,
        "confidence_sequence_rate": ours / canaries,
        "naive_peeking_rollbacks": naive,
        "naive_peeking_rate": naive / canaries,
    }


def labels_needed(p0: float, p1: float, canary_share: float, policy: CanaryPolicy, verdict: str) -> tuple[int, int]:
    """``(canary, total)`` labelled predictions at which the accuracy CS, centred on the true difference,
    first gives ``verdict`` (the typical case: half of the canaries get there sooner, half later)."""
    tol, alpha = policy.accuracy_tolerance, policy.alpha_per_metric
    diff = p1 - p0
    for n1 in range(policy.min_labelled, 5_000_000, 10):
        n0 = max(policy.min_labelled, round(n1 * (1 - canary_share) / canary_share))
        radius = mixture_radius(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0, policy.tau_accuracy, alpha)
        if (verdict == "rollback" and diff + radius < -tol) or (verdict == "proceed" and diff - radius > -tol):
            return n1, n1 + n0
    return -1, -1


def bench_power(canaries: int = 200) -> dict[str, Any]:
    analytic = []
    for p0, p1, verdict in ((0.90, 0.85, "rollback"), (0.90, 0.95, "proceed"), (0.90, 0.90, "proceed"),
                            (0.98, 0.93, "rollback"), (0.98, 0.98, "proceed")):
        for tolerance in (0.01, 0.02):
            for share in (0.10, 0.50):
                policy = CanaryPolicy(accuracy_tolerance=tolerance)
                canary_labels, total_labels = labels_needed(p0, p1, share, policy, verdict)
                analytic.append({
                    "baseline_accuracy": p0, "canary_accuracy": p1, "tolerance": tolerance, "canary_share": share,
                    "verdict": verdict, "canary_labels": canary_labels, "total_labels": total_labels,
                })
    simulated: dict[str, Any] = {}
    for name, expected in (("worse", "rollback"), ("better", "proceed")):
        jobs = [(scenario(name), seed, 120, "counts") for seed in range(canaries)]
        with ProcessPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(_outcome, jobs, chunksize=10))
        hits = [r for r in results if r[0] == expected]
        labels = sorted(r[2] for r in hits)
        minutes = sorted(r[1] for r in hits)
        simulated[name] = {
            "canaries": canaries,
            "found": len(hits),
            "wrong_direction": sum(r[0] not in (expected, "hold") for r in results),
            "canary_labelled_median": labels[len(labels) // 2] if labels else None,
            "canary_labelled_p90": labels[math.ceil(0.9 * len(labels)) - 1] if labels else None,
            "minutes_median": minutes[len(minutes) // 2] if minutes else None,
            "minutes_p90": minutes[math.ceil(0.9 * len(minutes)) - 1] if minutes else None,
        }
    return {
        "setting": "baseline accuracy 0.90, 20 requests/s, 30 % labelled, label delay median 2 min, steps 10/25/50",
        "analytic_labels_needed": analytic,
        "simulated": simulated,
    }


def main(out_path: str | Path = DEFAULT_OUT, *, quick: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "benchmark": "canary",
        "when": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "quick": quick,
        "throughput": bench_throughput(50_000 if quick else 200_000),
        "memory": bench_memory(),
        "close_to_verdict_ms": bench_close_to_verdict(),
        "simulation_levels": bench_simulation_levels(),
        "false_rollbacks_equal": bench_false_rollbacks(quick=quick),
        "boundary": bench_boundary(100 if quick else 500),
        "power": bench_power(50 if quick else 200),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    print(json.dumps(main(args[0] if args else DEFAULT_OUT, quick="--quick" in sys.argv), indent=2))
