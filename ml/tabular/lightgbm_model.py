"""LightGBM binary classifier behind the ml/base.py contract."""

from __future__ import annotations

import pickle
from typing import Any, Self

import lightgbm as lgb
import numpy as np

from ml.base import ProgressCallback, Throttle
from schemas.tabular import LightGBMParams

SMALL_INPUT_ROWS = 2048
"""below this many rows, prediction runs on one thread"""


class LightGBMModel:
    """Fraud classifier. ``predict_scores`` gives P(fraud); ``predict`` thresholds it at 0.5."""

    kind = "lightgbm"

    def __init__(self, params: LightGBMParams | dict[str, Any] | None = None, *, num_threads: int = 0) -> None:
        self.params = params if isinstance(params, LightGBMParams) else LightGBMParams.model_validate(params or {})
        self.num_threads = num_threads
        self.booster: lgb.Booster | None = None
        self.feature_names: list[str] = []

    def _lgb_params(self, y: np.ndarray) -> dict[str, Any]:
        p = self.params
        out: dict[str, Any] = {
            "objective": "binary",
            "max_depth": p.max_depth,
            "learning_rate": p.learning_rate,
            "num_leaves": p.num_leaves,
            "min_child_samples": p.min_child_samples,
            "bagging_fraction": p.subsample,
            "bagging_freq": 1 if p.subsample < 1 else 0,
            "feature_fraction": p.colsample_bytree,
            "seed": p.seed,
            "deterministic": True,
            "verbosity": -1,
            "num_threads": self.num_threads,
        }
        if p.class_weight == "balanced":
            pos = max(int(y.sum()), 1)
            out["scale_pos_weight"] = (len(y) - pos) / pos
        return out

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        feature_names: list[str] | None = None,
        progress: ProgressCallback | None = None,
        progress_every: int = 10,
    ) -> Self:
        """Trains ``n_estimators`` rounds; the progress callback runs every ``progress_every`` rounds
        (then throttled) and may raise TrainingCancelled to stop."""
        self.feature_names = feature_names or [f"f{i}" for i in range(X.shape[1])]
        throttle = Throttle(progress)
        total = self.params.n_estimators

        def on_iteration(env: lgb.callback.CallbackEnv) -> None:
            done = env.iteration + 1
            if done % progress_every == 0 or done == total:
                throttle(100.0 * done / total, {"iteration": done})

        data = lgb.Dataset(X, label=y, feature_name=self.feature_names, free_raw_data=True)
        self.booster = lgb.train(self._lgb_params(y), data, num_boost_round=total, callbacks=[on_iteration])
        return self

    def predict_scores(self, X: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("fit the model first")
        # One thread for the small inputs of online serving: OpenMP's thread team costs more than
        # it saves below a few thousand rows, and its spinning threads steal the cores of the other services.
        threads = 1 if X.shape[0] < SMALL_INPUT_ROWS else self.num_threads
        return np.asarray(self.booster.predict(X, num_threads=threads), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_scores(X) >= 0.5).astype(np.int8)

    def to_bytes(self) -> bytes:
        if self.booster is None:
            raise RuntimeError("fit the model first")
        return pickle.dumps(
            {
                "kind": self.kind,
                "params": self.params.model_dump(),
                "features": self.feature_names,
                "booster": self.booster.model_to_string(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        blob = pickle.loads(data)  # noqa: S301 - our own artifact, verified by sha256 before loading
        model = cls(blob["params"])
        model.feature_names = blob["features"]
        model.booster = lgb.Booster(model_str=blob["booster"])
        return model
