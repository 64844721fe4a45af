"""One entry point for a tabular training job: split by time, fit, evaluate on the hold-out
beside the majority baseline, serialise. Pure: the caller loads records and stores bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.base import ProgressCallback
from ml.tabular.data import Dataset, time_split
from ml.tabular.holdout import HoldoutPredictions, fingerprint
from ml.tabular.isolation_forest import IsolationForestModel
from ml.tabular.lightgbm_model import LightGBMModel
from ml.tabular.metrics import binary_metrics, majority_baseline

HOLDOUT_FRACTION = 0.2


class TrainingDataError(ValueError):
    """The records cannot train this model type (too few, no labels for a classifier…)."""


def model_class(model_type: str) -> type[LightGBMModel] | type[IsolationForestModel]:
    return {"lightgbm": LightGBMModel, "isolation_forest": IsolationForestModel}[model_type]


def library_versions() -> dict[str, str]:
    import lightgbm
    import sklearn

    return {"lightgbm": lightgbm.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__}


@dataclass
class TrainOutcome:
    artifact: bytes
    metrics: dict[str, Any]
    baseline: dict[str, Any] | None
    holdout: dict[str, Any]
    feature_names: list[str]
    predictions: HoldoutPredictions | None = None
    """what the model predicted on each hold-out record (None when the hold-out has no labels)"""
    library_versions: dict[str, str] = field(default_factory=library_versions)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.artifact).hexdigest()


def train_tabular(
    model_type: str,
    params: dict[str, Any],
    data: Dataset,
    *,
    progress: ProgressCallback | None = None,
    num_threads: int = 0,
) -> TrainOutcome:
    """Fits on the first 80 % of the period (by time) and evaluates on the last 20 %; the hold-out's
    fingerprint goes into ``holdout["records_sha256"]`` and the per-record predictions into ``predictions``."""
    if len(data) < 10:
        raise TrainingDataError(f"{len(data)} records in the period; at least 10 are needed")
    train, test = time_split(data, HOLDOUT_FRACTION)
    holdout = {
        "method": "time-ordered: the last 20% of the period by timestamp, never shuffled",
        "fraction": HOLDOUT_FRACTION,
        "train_records": len(train),
        "test_records": len(test),
        "test_from": float(test.timestamps[0]),
        "test_to": float(test.timestamps[-1]),
        "records_sha256": fingerprint(test),
    }
    baseline: dict[str, Any] | None = None
    predictions: HoldoutPredictions | None = None
    if model_type == "lightgbm":
        if train.y is None or test.y is None:
            raise TrainingDataError("LightGBM needs a label on every record in the period")
        if len(np.unique(train.y)) < 2:
            raise TrainingDataError("the training part of the period holds a single class")
        model: LightGBMModel | IsolationForestModel = LightGBMModel(params, num_threads=num_threads)
        model.fit(train.X, train.y, feature_names=data.feature_names, progress=progress)
        scores = model.predict_scores(test.X)
        labels = (scores >= 0.5).astype(np.int8)
        metrics: dict[str, Any] = binary_metrics(test.y, labels, scores)
        baseline = majority_baseline(train.y, test.y)
        predictions = HoldoutPredictions.of(test, labels, scores)
    else:
        model = IsolationForestModel(params)
        model.fit(train.X, feature_names=data.feature_names, progress=progress)
        pred = model.predict(test.X)
        metrics = {"anomaly_rate": round(float(pred.mean()), 4)}
        if test.y is not None and train.y is not None:
            anomaly_scores = model.predict_scores(test.X)
            metrics |= binary_metrics(test.y, pred, anomaly_scores)
            baseline = majority_baseline(train.y, test.y)
            predictions = HoldoutPredictions.of(test, pred, anomaly_scores)
        metrics["labelled"] = test.y is not None
    return TrainOutcome(
        artifact=model.to_bytes(),
        metrics=metrics,
        baseline=baseline,
        holdout=holdout,
        feature_names=data.feature_names,
        predictions=predictions,
    )
