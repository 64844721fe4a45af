"""A model's hold-out: which records it was (a fingerprint) and what the model predicted on each of them,
stored beside the artifact so that models can later be compared on the same records
(``ml/tabular/compare.py``). Pure: arrays in, bytes out."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from ml.tabular.data import Dataset

FORMAT = 1
"""version of the stored layout (``to_bytes``)"""


def fingerprint(ds: Dataset) -> str:
    """sha256 of the hold-out's records in their order: feature names, timestamps, features and labels.
    Two models share a hold-out exactly when their fingerprints are equal; the records then line up
    index by index, which a paired comparison needs (records that tie on time but were loaded in another
    order give another fingerprint: such models are compared unpaired, never wrongly paired)."""
    h = hashlib.sha256()
    h.update("\x1f".join(ds.feature_names).encode())
    h.update(np.ascontiguousarray(ds.timestamps, dtype="<f8").tobytes())
    X = np.ascontiguousarray(ds.X, dtype="<f4")
    h.update(np.where(np.isnan(X), np.float32(np.nan), X).astype("<f4").tobytes())  # one NaN bit pattern
    h.update(b"no-labels" if ds.y is None else np.ascontiguousarray(ds.y, dtype=np.int8).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class HoldoutPredictions:
    """Per hold-out record: the true label, the label the model predicted (the one its accuracy, precision,
    recall, f1 and false-positive rate count) and its score (the one its ROC AUC ranks)."""

    fingerprint: str
    y: np.ndarray
    pred: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.y)
        if len(self.pred) != n or len(self.scores) != n:
            raise ValueError(f"hold-out arrays differ in length: {n}, {len(self.pred)}, {len(self.scores)}")
        for name, arr in (("y", self.y), ("pred", self.pred)):
            if n and not np.isin(arr, (0, 1)).all():
                raise ValueError(f"hold-out {name} must be 0/1")

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def of(cls, ds: Dataset, pred: np.ndarray, scores: np.ndarray) -> HoldoutPredictions:
        if ds.y is None:
            raise ValueError("a hold-out without labels cannot be compared")
        return cls(
            fingerprint(ds),
            np.asarray(ds.y, dtype=np.int8),
            np.asarray(pred, dtype=np.int8),
            np.asarray(scores, dtype=np.float64),
        )

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            format=np.asarray(FORMAT),
            fingerprint=np.asarray(self.fingerprint),
            y=self.y.astype(np.int8),
            pred=self.pred.astype(np.int8),
            scores=self.scores.astype(np.float64),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> HoldoutPredictions:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if int(npz["format"]) != FORMAT:
                raise ValueError(f"unknown hold-out predictions format {int(npz['format'])}")
            return cls(str(npz["fingerprint"]), npz["y"], npz["pred"], npz["scores"])
