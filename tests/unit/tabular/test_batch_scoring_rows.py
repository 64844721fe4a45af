"""The rows batch scoring reads: files (CSV, JSON lines) and stored record blocks, into the model's columns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.tabular.score_files import read_rows
from ml.tabular.scoring import block_matrix, feature_matrix


def test_csv_rows_keep_order_ids_and_missing_cells() -> None:
    rows = list(read_rows(b"\xef\xbb\xbfrecord_id,amount,hour,timestamp\ntx-1,12.5,3,2025-10-01\n,7,,\n", "csv"))
    assert [(r.row, r.record_id) for r in rows] == [(1, "tx-1"), (2, None)]
    assert rows[0].features == {"amount": 12.5, "hour": 3.0} and rows[1].features == {"amount": 7.0}


def test_jsonl_rows_flat_or_nested_with_booleans() -> None:
    data = b'{"id": 5, "features": {"amount": 1, "card_present": true}}\n\n{"amount": "2.5", "flag": "false"}\n'
    rows = list(read_rows(data, "jsonl"))
    assert rows[0].record_id == "5" and rows[0].features == {"amount": 1.0, "card_present": 1.0}
    assert rows[1].row == 2 and rows[1].features == {"amount": 2.5, "flag": 0.0}


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"a,b\n1,oops\n", "csv", "row 1: feature 'b' is not numeric"),
        (b"a\n1\nnan\n", "csv", "row 2: feature 'a' is not a finite number"),
        (b"", "csv", "no header"),
        (b'{"a": 1}\n[1]\n', "jsonl", "row 2: not a JSON object"),
        (b'{"a": 1\n', "jsonl", "row 1: not a JSON object"),
        (b'{"record_id": "x"}\n', "jsonl", "row 1: no feature values"),
    ],
)
def test_bad_rows_are_named(data: bytes, fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(read_rows(data, fmt))


def test_feature_matrix_is_in_model_order_with_nan_for_missing() -> None:
    X = feature_matrix([{"b": 2, "a": 1}, {"a": 3}], ["a", "b", "c"])
    assert X.shape == (2, 3) and X[0].tolist()[:2] == [1.0, 2.0]
    assert math.isnan(X[0, 2]) and math.isnan(X[1, 1])
    assert feature_matrix([], ["a"]).shape == (0, 1)


def test_block_matrix_selects_the_period_and_keeps_positions() -> None:
    block = {
        "ts": [100, 200, 300, 400],
        "label": [0, -1, 1, 0],
        "features": {"b": [1, None, 3, 4], "a": [10, 20, 30, 40]},
    }
    positions, ts, X, labels = block_matrix(block, 200, 400, ["a", "b", "z"])
    assert positions.tolist() == [1, 2] and ts.tolist() == [200, 300] and labels.tolist() == [-1, 1]
    assert X[:, 0].tolist() == [20.0, 30.0] and math.isnan(X[0, 1]) and X[1, 1] == 3.0
    assert np.isnan(X[:, 2]).all()
