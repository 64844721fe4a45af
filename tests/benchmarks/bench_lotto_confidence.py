"""What ``confidence_score`` reads on the demo history, beside the former percentile score of the same sets, and
how often the backtest's baseline verdict reads false on pure noise (the one test now, the two intervals before).

Run: ``.venv/bin/python -m tests.benchmarks.bench_lotto_confidence [out_path]`` (about a minute; writes
``bench-results/lotto_confidence.json``). The former score is the previous definition's code, read from git
(``FORMER_COMMIT:ml/lotto/sampling.py``); without git that column is left out.

* generators: 1,000 sets (50 requests × 20) per algorithm and machine, with the evidence they are weighted by;
* ensemble: the three members with default parameters trained per machine (as ``POST /api/models/train`` does),
  1,000 sets from weighted voting at the seed's threshold 0.7, and the former score of 1,000 sets sampled from
  the same combined scores;
* noise: ``NOISE_RUNS`` ``basic`` backtests (100 origins × 5 sets), counting "baseline not within" under each rule.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ml.lotto.backtest import RANDOM_P_3PLUS, backtest
from ml.lotto.draws import draws_for_machine, synthetic_history
from ml.lotto.ensemble import combine_scores, ensemble_predict, voting_weights
from ml.lotto.generators import PremiumFilter, generate_sets
from ml.lotto.models import create_model
from ml.lotto.sampling import gumbel_top_k
from ml.lotto.strategies import number_model

DEFAULT_OUT = Path("bench-results/lotto_confidence.json")
FORMER_COMMIT = "e598178"
NOISE_RUNS = 300
MEMBERS = ("pytorch_transformer", "sklearn_ensemble", "enhanced_predictor")


def former_scoring() -> ModuleType | None:
    """The percentile ``confidence_scores`` of ``FORMER_COMMIT`` (None when git cannot show it)."""
    try:
        code = subprocess.run(
            ["git", "show", f"{FORMER_COMMIT}:ml/lotto/sampling.py"], capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "former_sampling.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("former_sampling", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spread(values: Any) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {name: round(float(getattr(array, name)()), 4) for name in ("mean", "min", "max")}


def main(out_path: str | Path = DEFAULT_OUT) -> dict[str, Any]:
    started = time.perf_counter()
    former = former_scoring()
    history = synthetic_history(1200)
    out: dict[str, Any] = {"history": "synthetic_history(1200): the demo, uniform draws", "former": FORMER_COMMIT}

    generators: dict[str, Any] = {}
    for algorithm in ("enhanced", "premium"):
        for machine in (1, 2, 3):
            t0 = time.perf_counter()
            results = [
                generate_sets(history, machine, sets_count=20, algorithm=algorithm, rng=seed) for seed in range(50)
            ]
            ms = (time.perf_counter() - t0) * 1000 / len(results)
            sets = np.array([p.numbers for r in results for p in r.predictions])
            row: dict[str, Any] = {
                "confidence_score": _spread([p.confidence_score for r in results for p in r.predictions]),
                "evidence": results[-1].metadata.confidence_evidence.model_dump(mode="json"),  # type: ignore[union-attr]
                "ms_per_request_of_20_sets": round(ms, 1),
            }
            if former is not None:
                machine_draws = draws_for_machine(history, machine)
                model = number_model(machine_draws[-50:], machine)
                factor = model.set_factors if model.balance_boost != 1.0 else None
                accept = PremiumFilter.from_history(machine_draws) if algorithm == "premium" else None
                row["former_score"] = _spread(
                    former.confidence_scores(sets, model.weights, set_factor=factor, accept=accept)
                )
            generators[f"{algorithm} {machine}호기"] = row
    out["generators"] = generators

    ensemble: dict[str, Any] = {}
    for machine in (1, 2, 3):
        members = {name: create_model(name, {"machine": machine}).fit(history) for name in MEMBERS}
        results = [
            ensemble_predict(members, history, machine, sets_count=20, confidence_threshold=0.7, rng=seed)
            for seed in range(50)
        ]
        meta = results[-1].metadata
        row = {
            "confidence_score": _spread([p.confidence_score for r in results for p in r.predictions]),
            "threshold_met": meta.threshold_met,
            "threshold_reachable": meta.threshold_reachable,
            "max_confidence_score": meta.max_confidence_score,
            "evidence": meta.confidence_evidence.model_dump(mode="json"),
            "members": {name: m.evidence().model_dump(mode="json") for name, m in members.items()},
        }
        scores = {name: m.predict(history) for name, m in members.items()}
        combined = combine_scores(scores, "weighted_voting", weights=voting_weights(members))
        row["combined_max_deviation_from_6_45"] = round(float(np.abs(combined - 6 / 45).max()), 6)
        if former is not None:
            sample = gumbel_top_k(combined, 1000, np.random.default_rng(0))
            row["former_score_of_1000_sampled_sets"] = _spread(former.confidence_scores(sample, combined))
        ensemble[f"{machine}호기"] = row
    out["ensemble_weighted_voting"] = ensemble

    two_intervals_false = one_test_false = 0
    for seed in range(NOISE_RUNS):
        result = backtest(history, 1 + seed % 3, algorithm="basic", rounds=100, sets_per_round=5, rng=seed)
        low, high = result.mean_matches_ci95
        hit_low, hit_high = result.hit_rate_3plus_ci95
        two_intervals_false += not (low <= 0.8 <= high and hit_low <= float(RANDOM_P_3PLUS) <= hit_high)
        one_test_false += not result.baseline_within_ci
    out["noise_backtests"] = {
        "runs": NOISE_RUNS,
        "former_two_intervals_read_false": two_intervals_false,
        "one_t_test_at_5_percent_rejects": one_test_false,
    }
    out["seconds"] = round(time.perf_counter() - started, 1)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    result = main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT)
    print(json.dumps(result["noise_backtests"]), result["seconds"], "s")
