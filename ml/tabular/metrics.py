"""Binary classification metrics on held-out data, and the majority-class baseline."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None) -> dict[str, float | None]:
    """accuracy, precision, recall, f1_score, roc_auc (None with a single class), false_positive_rate."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    negatives = int((y_true == 0).sum())
    false_pos = int(((y_pred == 1) & (y_true == 0)).sum())
    auc: float | None = None
    if scores is not None and len(np.unique(y_true)) == 2:
        auc = round(float(roc_auc_score(y_true, scores)), 4)
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "precision": round(float(precision_score(y_true, y_pred, zero_division=0)), 4),
        "recall": round(float(recall_score(y_true, y_pred, zero_division=0)), 4),
        "f1_score": round(float(f1_score(y_true, y_pred, zero_division=0)), 4),
        "roc_auc": auc,
        "false_positive_rate": round(false_pos / negatives, 4) if negatives else 0.0,
    }


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float | None]:
    """What always predicting the training set's majority class scores on the hold-out."""
    majority = int(np.bincount(np.asarray(y_train).astype(int), minlength=2).argmax())
    pred = np.full_like(np.asarray(y_test).astype(int), majority)
    out = binary_metrics(y_test, pred, None)
    out["roc_auc"] = 0.5
    out["predicts"] = majority
    return out
