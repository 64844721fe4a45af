"""What runs inside a training process: load the job's data, call the pure trainer in ``ml/``,
return the artifact and figures. Progress goes back to the parent through a queue and the
parent's cancel flag is checked at every progress step."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ml.base import TrainingCancelled

_DATASETS: dict[Any, Any] = {}
"""The last period loaded in this training process (re-training the same period skips the load)."""


def limit_threads(threads: int) -> None:
    """Pool initializer, before any numeric library is loaded: OpenMP (LightGBM, torch) uses ``threads``.
    Two OpenMP threads on a two-core machine that also runs the broker, the database and the API stall
    at every barrier when one is descheduled: measured, a LightGBM fit took 0.99 s in the pool against
    0.53 s alone; with one thread it does not stall."""
    os.environ["OMP_NUM_THREADS"] = str(threads)


def warm_up() -> int:
    """Imports the heavy libraries once per pool process so the first job does not pay for it."""
    import lightgbm  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import ml.rl.registry  # noqa: F401  (torch and the RL agents)
    import ml.tabular  # noqa: F401
    from consumers.rl import warm_up as warm_up_rl

    warm_up_rl()
    return os.getpid()


def run_job(mongodb_url: str, db_name: str, command: dict[str, Any], progress_q: Any, cancel: Any) -> dict[str, Any]:
    """Returns {"status": "completed", ...} or {"status": "cancelled"}; raises on failure."""

    def report(pct: float, figures: Any) -> None:
        progress_q.put((float(pct), dict(figures)))  # first, so what was reported just before a cancel arrives
        if cancel.is_set():
            raise TrainingCancelled()

    try:
        runner = RUNNERS.get(command["domain"])
        if runner is None:
            raise ValueError(f"unknown training domain {command['domain']!r}")
        return runner(mongodb_url, db_name, command, report)
    except TrainingCancelled:
        return {"status": "cancelled"}


def _tabular(mongodb_url: str, db_name: str, command: dict[str, Any], report: Any) -> dict[str, Any]:
    from datetime import UTC, date, datetime, timedelta
    from datetime import time as dtime

    from pymongo import MongoClient

    from infra.mongo import RECORD_BLOCK_INDEX, RECORD_BLOCKS
    from ml.tabular.data import from_blocks
    from ml.tabular.train import train_tabular

    spec = command["spec"]
    start = datetime.combine(date.fromisoformat(spec["data_period"]["start_date"]), dtime.min, UTC)
    end = datetime.combine(date.fromisoformat(spec["data_period"]["end_date"]), dtime.min, UTC) + timedelta(days=1)
    t0 = time.perf_counter()
    query = {"start": {"$lt": end}, "end": {"$gte": start}}
    with MongoClient(mongodb_url, tz_aware=True) as client:
        db = client[db_name]
        # blocks are immutable once written: the set of their ids (read from the small index documents)
        # identifies the data of the period
        identity = (start, end, tuple(sorted(str(b["_id"]) for b in db[RECORD_BLOCK_INDEX].find(query, {"_id": 1}))))
        data = _DATASETS.get(identity)
        cached = data is not None
        if data is None:
            blocks = list(db[RECORD_BLOCKS].find(query))  # whole documents: a projection is slower on SecantusDB
            data = from_blocks(blocks, int(start.timestamp() * 1000), int(end.timestamp() * 1000))
            _DATASETS.clear()  # keep one period per training process: bounded memory
            _DATASETS[identity] = data
    load_s = time.perf_counter() - t0
    report(0.0, {"records": len(data), "load_seconds": round(load_s, 3), "dataset_cached": cached})
    t1 = time.perf_counter()
    outcome = train_tabular(command["model_type"], spec.get("hyperparameters", {}), data, progress=report)
    fit_s = time.perf_counter() - t1
    return {
        "status": "completed",
        "artifact": outcome.artifact,
        "sha256": outcome.sha256,
        "holdout_predictions": outcome.predictions.to_bytes() if outcome.predictions is not None else None,
        "metrics": outcome.metrics,
        "result": {
            "holdout": outcome.holdout,
            "baseline": outcome.baseline,
            "record_count": len(data),
            "feature_names": outcome.feature_names,
            "timings_seconds": {"load": round(load_s, 3), "fit_and_evaluate": round(fit_s, 3)},
            "dataset_cached": cached,
        },
        "lineage": {
            "data_period": spec["data_period"],
            "record_count": len(data),
            "hyperparameters": spec.get("hyperparameters", {}),
            "library_versions": outcome.library_versions,
            "holdout": outcome.holdout,
        },
    }


Runner = Callable[[str, str, dict[str, Any], Callable[[float, Any], None]], dict[str, Any]]
RUNNERS: dict[str, Runner] = {"tabular": _tabular}
"""domain -> runner(mongodb_url, db_name, command, report) returning the outcome dict:
{"status": "completed", "artifact": bytes, "sha256", "metrics", "result", "lineage"}, and optionally
"holdout_predictions": bytes (``ml.tabular.holdout.HoldoutPredictions``), stored beside the artifact."""


def _lotto(mongodb_url: str, db_name: str, command: dict[str, Any], report: Any) -> dict[str, Any]:
    from consumers.lotto import train_lotto  # imported in the pool process only when a lotto job runs

    return train_lotto(mongodb_url, db_name, command, report)


RUNNERS["lotto"] = _lotto


def _rl(mongodb_url: str, db_name: str, command: dict[str, Any], report: Any) -> dict[str, Any]:
    from consumers.rl import train_agent  # imported in the pool process only when an RL job runs

    return train_agent(mongodb_url, db_name, command, report)


RUNNERS["rl"] = _rl
