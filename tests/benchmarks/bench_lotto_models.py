"""Lotto benchmark: training time of each ensemble member on the 1,200-draw SYNTHETIC history, in-process
time of ``machine_analysis`` over 1,200 draws, generation/backtest/ensemble latency, and backtests
beside the exact random baseline. Writes ``bench-results/lotto_models.json``.

Run: ``.venv/bin/python -m tests.benchmarks.bench_lotto_models [out_path]``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch

from ml.lotto.backtest import RANDOM_P_3PLUS, backtest, performance_metrics
from ml.lotto.draws import synthetic_history
from ml.lotto.ensemble import ensemble_predict
from ml.lotto.generators import generate_sets
from ml.lotto.models import MODEL_TYPES, RANDOM_LOG_LOSS, create_model
from ml.lotto.statistics import machine_analysis

DEFAULT_OUT = Path("bench-results/lotto_models.json")
HISTORY_DRAWS = 1200
HISTORY_SEED = 20250823


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def _summary(times: list[float], unit: float = 1.0, digits: int = 3) -> dict[str, Any]:
    scaled = [t * unit for t in times]
    return {
        "runs": len(scaled),
        "median": round(statistics.median(scaled), digits),
        "min": round(min(scaled), digits),
        "max": round(max(scaled), digits),
        "all": [round(t, digits) for t in scaled],
    }


def main(out_path: str | Path = DEFAULT_OUT, *, model_repeats: int = 3) -> dict[str, Any]:
    history = synthetic_history(HISTORY_DRAWS, seed=HISTORY_SEED)
    report: dict[str, Any] = {
        "benchmark": "lotto_models",
        "data": {"draws": len(history), "synthetic": True, "seed": HISTORY_SEED},
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads_in_fit": 1,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "random_baseline": {
            "holdout_log_loss": round(RANDOM_LOG_LOSS, 6),
            "mean_matches": 0.8,
            "hit_rate_3plus": round(float(RANDOM_P_3PLUS), 6),
        },
    }

    models: dict[str, Any] = {}
    fitted: dict[str, Any] = {}
    for name in MODEL_TYPES:
        times, model = _timed(lambda name=name: create_model(name).fit(history), model_repeats)
        predict_times, _ = _timed(lambda model=model: model.predict(history), 20)
        fitted[name] = model
        models[name] = {
            "params": model.params.model_dump(),
            "fit_seconds": _summary(times),
            "fit_includes": "holdout training (80 %) + scoring of 240 held-out draws + refit on all 1,200",
            "predict_ms": _summary(predict_times, 1000.0, 2),
            "artifact_bytes": len(model.to_bytes()),
            "metrics": model.metrics,
        }
    report["models"] = models

    analysis_times, analysis = _timed(lambda: machine_analysis(history, HISTORY_DRAWS), 20)
    per_machine_times, _ = _timed(lambda: machine_analysis(history, 100, machine=1), 50)
    report["machine_analysis"] = {
        "all_1200_draws_ms": _summary(analysis_times, 1000.0, 2),
        "one_machine_100_rounds_ms": _summary(per_machine_times, 1000.0, 2),
        "total_rounds": analysis.analysis_period.total_rounds,
        "pattern_analysis": analysis.pattern_analysis.model_dump(),
        "random_baseline": analysis.random_baseline,
    }

    generation: dict[str, Any] = {}
    for algorithm in ("basic", "enhanced", "premium"):
        times, _ = _timed(
            lambda algorithm=algorithm: generate_sets(history, 2, sets_count=5, algorithm=algorithm, rng=1), 50
        )
        generation[algorithm] = {"sets_count": 5, "ms": _summary(times, 1000.0, 2)}
    report["generate_ms"] = generation

    metrics_times, metrics = _timed(lambda: performance_metrics(history, 1, rounds=50), 3)
    report["performance_metrics"] = {"ms": _summary(metrics_times, 1000.0, 1), "example_1호기": metrics.model_dump()}

    ensemble: dict[str, Any] = {}
    for method in ("weighted_voting", "stacking", "blending"):
        times, result = _timed(
            lambda method=method: ensemble_predict(
                fitted, history, 2, sets_count=10, method=method, model_names=list(MODEL_TYPES), rng=1
            ),
            10,
        )
        ensemble[method] = {
            "sets_count": 10,
            "ms": _summary(times, 1000.0, 2),
            "threshold_met": result.metadata.threshold_met,
            "model_weights": result.metadata.model_weights,
        }
    report["ensemble_predict"] = ensemble

    backtests: dict[str, Any] = {}
    for machine in (1, 2, 3):
        for algorithm in ("basic", "enhanced", "premium"):
            started = time.perf_counter()
            result = backtest(history, machine, algorithm=algorithm, rounds=300, sets_per_round=10, rng=machine)
            backtests[f"{machine}호기/{algorithm}"] = {
                "seconds": round(time.perf_counter() - started, 3),
                "rounds_evaluated": result.rounds_evaluated,
                "sets_evaluated": result.sets_evaluated,
                "mean_matches": result.mean_matches,
                "mean_matches_ci95": result.mean_matches_ci95,
                "hit_rate_3plus": result.hit_rate_3plus,
                "hit_rate_3plus_ci95": result.hit_rate_3plus_ci95,
                "baseline_within_ci": result.baseline_within_ci,
                "confidence_correlation": result.confidence_correlation,
            }
    report["backtests_300_rounds_x_10_sets"] = backtests

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    result = main(target)
    print(json.dumps({name: m["fit_seconds"]["median"] for name, m in result["models"].items()}))
    analysis_ms = result["machine_analysis"]["all_1200_draws_ms"]["median"]
    print(f"machine_analysis over {HISTORY_DRAWS} draws: {analysis_ms} ms")
    print(f"written to {target}")
