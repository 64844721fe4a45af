"""Isolation Forest anomaly detector behind the ml/base.py contract."""

from __future__ import annotations

import io
import pickle
from typing import Any, Self

import joblib
import numpy as np
from sklearn.ensemble import IsolationForest

from ml.base import ProgressCallback, Throttle
from schemas.tabular import IsolationForestParams


class IsolationForestModel:
    """Unsupervised: ``fit`` ignores labels. ``predict_scores`` is the anomaly score in (0, 1]
    (scikit-learn's ``-score_samples``); ``predict`` is 1 for an anomaly."""

    kind = "isolation_forest"

    def __init__(self, params: IsolationForestParams | dict[str, Any] | None = None, *, n_jobs: int = 1) -> None:
        self.params = (
            params if isinstance(params, IsolationForestParams) else IsolationForestParams.model_validate(params or {})
        )
        self.n_jobs = n_jobs
        self.forest: IsolationForest | None = None
        self.feature_names: list[str] = []

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray | None = None,
        *,
        feature_names: list[str] | None = None,
        progress: ProgressCallback | None = None,
        batches: int = 10,
    ) -> Self:
        """Grows the forest in ``batches`` steps (warm start), reporting progress after each;
        the callback may raise TrainingCancelled."""
        p = self.params
        self.feature_names = feature_names or [f"f{i}" for i in range(X.shape[1])]
        X = np.nan_to_num(X, nan=0.0)
        forest = IsolationForest(
            n_estimators=0,
            contamination=p.contamination,
            max_samples=p.max_samples if not isinstance(p.max_samples, int) else min(p.max_samples, len(X)),
            max_features=p.max_features,
            random_state=p.seed,
            warm_start=True,
            n_jobs=self.n_jobs,
        )
        throttle = Throttle(progress)
        step = max(1, -(-p.n_estimators // batches))
        grown = 0
        while grown < p.n_estimators:
            grown = min(p.n_estimators, grown + step)
            forest.set_params(n_estimators=grown)
            forest.fit(X)
            throttle(100.0 * grown / p.n_estimators, {"estimators": grown})
        self.forest = forest
        return self

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        if self.forest is None:
            raise RuntimeError("fit the model first")
        return -self.forest.score_samples(np.nan_to_num(X, nan=0.0))

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.forest is None:
            raise RuntimeError("fit the model first")
        return (self.forest.predict(np.nan_to_num(X, nan=0.0)) == -1).astype(np.int8)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        joblib.dump(self.forest, buf)
        return pickle.dumps(
            {
                "kind": self.kind,
                "params": self.params.model_dump(),
                "features": self.feature_names,
                "forest": buf.getvalue(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        blob = pickle.loads(data)  # noqa: S301 - our own artifact, verified by sha256 before loading
        model = cls(blob["params"])
        model.feature_names = blob["features"]
        model.forest = joblib.load(io.BytesIO(blob["forest"]))
        return model
