"""Scoring with a trained tabular model, the same for online serving and batch scoring jobs: the artifact to a
model, rows of named features (or a stored record block) to the model's matrix (missing -> NaN), scores and 0/1
labels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml.tabular.data import column
from ml.tabular.isolation_forest import IsolationForestModel
from ml.tabular.lightgbm_model import LightGBMModel

TabularModel = LightGBMModel | IsolationForestModel


def load_model(model_type: str, artifact: bytes) -> TabularModel:
    cls = LightGBMModel if model_type == "lightgbm" else IsolationForestModel
    return cls.from_bytes(artifact)


def feature_matrix(rows: Sequence[Mapping[str, Any]], features: Sequence[str]) -> np.ndarray:
    """Rows of ``{feature: value}`` to a float matrix in the model's feature order; a missing value is NaN."""
    nan = math.nan
    values = [[nan if (v := row.get(name)) is None else float(v) for name in features] for row in rows]
    return np.array(values, dtype=np.float64).reshape(len(rows), len(features))


def score(model: TabularModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores, 0/1 labels): LightGBM's fraud probability with its 0.5 cut, Isolation Forest's anomaly score
    with its contamination cut."""
    if isinstance(model, LightGBMModel):
        scores = model.predict_scores(X)
        return scores, (scores >= 0.5).astype(np.int8)
    return model.predict_scores(X), model.predict(X)


def block_matrix(
    block: Mapping[str, Any], start_ms: int, end_ms: int, features: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One stored record block (``infra/tabular/records.py``) -> (positions in the block, epoch ms, feature matrix
    in ``features`` order, labels with -1 for none) of its records with ``start_ms <= ts < end_ms``."""
    ts = np.asarray(block["ts"], dtype=np.int64)
    keep = np.flatnonzero((ts >= start_ms) & (ts < end_ms))
    columns = block["features"]
    X = np.column_stack([column(columns.get(name), len(ts), np.float64)[keep] for name in features])
    X = X.reshape(len(keep), len(features))
    labels = np.asarray(block["label"], dtype=np.int8)[keep]
    return keep, ts[keep], X, labels
