"""Records (timestamp, features, optional label) to arrays, and the time-ordered hold-out split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray
    y: np.ndarray | None
    """0/1 labels, or None when no record carries a label"""
    timestamps: np.ndarray
    feature_names: list[str]

    def __len__(self) -> int:
        return int(self.X.shape[0])


def to_dataset(records: Sequence[dict[str, Any]], feature_names: list[str] | None = None) -> Dataset:
    """Records sorted by timestamp become a float32 matrix; missing features are NaN.
    Labels are used only when every record has one (a partly labelled period trains unsupervised)."""
    recs = sorted(records, key=lambda r: r["timestamp"])
    names = feature_names or sorted({k for r in recs for k in r["features"]})
    X = np.full((len(recs), len(names)), np.nan, dtype=np.float32)
    index = {n: i for i, n in enumerate(names)}
    for row, rec in enumerate(recs):
        for key, value in rec["features"].items():
            col = index.get(key)
            if col is not None:
                X[row, col] = float(value)
    labels = [r.get("label") for r in recs]
    y = np.asarray(labels, dtype=np.int8) if recs and all(lab is not None for lab in labels) else None
    ts = np.asarray([_epoch(r["timestamp"]) for r in recs], dtype=np.float64)
    return Dataset(X=X, y=y, timestamps=ts, feature_names=names)


def _epoch(value: datetime | str) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.timestamp()


def time_split(ds: Dataset, holdout_fraction: float = 0.2) -> tuple[Dataset, Dataset]:
    """The last ``holdout_fraction`` of the period (by time) is held out; nothing is shuffled."""
    n = len(ds)
    cut = int(round(n * (1 - holdout_fraction)))
    cut = min(max(cut, 1), n - 1) if n >= 2 else n

    def part(sl: slice) -> Dataset:
        return Dataset(ds.X[sl], None if ds.y is None else ds.y[sl], ds.timestamps[sl], ds.feature_names)

    return part(slice(0, cut)), part(slice(cut, n))


def column(values: list[Any] | None, n: int, dtype: Any = np.float32) -> np.ndarray:
    """A stored block's feature column (``None`` for a feature the block lacks) as ``n`` numbers; missing is NaN."""
    if values is None:
        return np.full(n, np.nan, dtype=dtype)
    try:
        return np.asarray(values, dtype=dtype)
    except TypeError:  # None among the values: a missing feature is NaN
        return np.asarray([np.nan if v is None else v for v in values], dtype=dtype)


def from_blocks(blocks: Sequence[dict[str, Any]], start_ms: int, end_ms: int) -> Dataset:
    """Columnar record blocks (see infra/tabular/records.py) to a Dataset of the records with
    ``start_ms <= ts < end_ms``, sorted by time. Labels are used only when all are present."""
    names = sorted({n for b in blocks for n in b["features"]})
    cols: list[list[np.ndarray]] = [[] for _ in names]
    ts_parts, label_parts = [], []
    for block in blocks:
        ts = np.asarray(block["ts"], dtype=np.int64)
        keep = (ts >= start_ms) & (ts < end_ms)
        if not keep.any():
            continue
        ts_parts.append(ts[keep])
        label_parts.append(np.asarray(block["label"], dtype=np.int8)[keep])
        for i, name in enumerate(names):
            cols[i].append(column(block["features"].get(name), len(ts))[keep])
    if not ts_parts:
        return Dataset(np.empty((0, len(names)), np.float32), None, np.empty(0), names)
    ts_all = np.concatenate(ts_parts)
    order = np.argsort(ts_all, kind="stable")
    X = np.column_stack([np.concatenate(c) for c in cols])[order] if names else np.empty((len(ts_all), 0), np.float32)
    labels = np.concatenate(label_parts)[order]
    y = None if (labels < 0).any() else labels
    return Dataset(X=X, y=y, timestamps=ts_all[order] / 1000.0, feature_names=names)
