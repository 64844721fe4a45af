"""Tabular training: the runner that loads a job's records from the columnar blocks and calls the pure trainer
in ``ml/tabular`` (inside a training pool process), and the model naming of the family."""

from __future__ import annotations

import time
from typing import Any

from schemas import jobs
from schemas.tabular import TabularJobSpec

MODEL_MAJOR = {"lightgbm": 1, "isolation_forest": 2}
MODEL_LABEL = {"lightgbm": "LightGBM", "isolation_forest": "Isolation Forest"}

_DATASETS: dict[Any, Any] = {}
"""The last period loaded in this training process (re-training the same period skips the load)."""


def tabular_name(cmd: jobs.TrainRequested, n: int) -> tuple[str, str, str]:
    """``model_v1.N.0`` for LightGBM, ``model_v2.N.0`` for Isolation Forest (N counts up per type)."""
    version = f"{MODEL_MAJOR.get(cmd.model_type, 9)}.{n}.0"
    return f"model_v{version}", version, f"{MODEL_LABEL.get(cmd.model_type, cmd.model_type)} v{version}"


def warm_up() -> None:
    """Imports LightGBM and scikit-learn in a fresh pool process."""
    import lightgbm  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import ml.tabular  # noqa: F401


def train_tabular_job(
    mongodb_url: str, db_name: str, command: jobs.TrainRequested, report: Any
) -> jobs.TrainingOutcome:
    from datetime import UTC, datetime, timedelta
    from datetime import time as dtime

    from pymongo import MongoClient

    from infra.mongo import RECORD_BLOCK_INDEX, RECORD_BLOCKS
    from ml.tabular.data import from_blocks
    from ml.tabular.train import train_tabular

    spec = TabularJobSpec.model_validate(command.spec)
    start = datetime.combine(spec.data_period.start_date, dtime.min, UTC)
    end = datetime.combine(spec.data_period.end_date, dtime.min, UTC) + timedelta(days=1)
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
    outcome = train_tabular(command.model_type, spec.hyperparameters, data, progress=report)
    fit_s = time.perf_counter() - t1
    return jobs.TrainingOutcome(**{
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
            "data_period": spec.data_period.model_dump(mode="json"),
            "record_count": len(data),
            "hyperparameters": spec.hyperparameters,
            "library_versions": outcome.library_versions,
            "holdout": outcome.holdout,
        },
    })
