"""Model comparison with uncertainty (ml/tabular/compare.py) and the stored hold-out (ml/tabular/holdout.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml.tabular.compare import (
    LEVEL,
    Entry,
    NotComparable,
    bootstrap,
    compare_models,
    interval,
    observed,
    resamples_for,
)
from ml.tabular.data import Dataset, to_dataset
from ml.tabular.holdout import HoldoutPredictions, fingerprint
from ml.tabular.metrics import binary_metrics
from ml.tabular.synthetic import transactions
from ml.tabular.train import train_tabular

FP = "a" * 64


def _truth(n: int, rate: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(np.int8)


def _predictor(y: np.ndarray, accuracy: float, seed: int, fp: str = FP) -> HoldoutPredictions:
    """Right on each record with probability ``accuracy``; the score agrees with the label, with noise."""
    rng = np.random.default_rng(seed)
    pred = np.where(rng.random(len(y)) < accuracy, y, 1 - y).astype(np.int8)
    scores = np.clip(0.5 * pred + 0.5 * rng.random(len(y)), 0, 1)
    return HoldoutPredictions(fp, y, pred, scores)


def _entry(model_id: str, pred: HoldoutPredictions | None, *, t: int = 0, metrics: dict | None = None) -> Entry:
    if metrics is None:
        assert pred is not None
        metrics = binary_metrics(pred.y, pred.pred, pred.scores)
    return Entry(
        model_id,
        metrics,
        datetime(2025, 11, 16, t, tzinfo=UTC),
        holdout_sha256=pred.fingerprint if pred is not None else None,
        predictions=pred,
    )


def test_identical_predictions_differ_by_zero_and_are_not_conclusive() -> None:
    y = _truth(1500, 0.05, 1)
    a = _predictor(y, 0.95, 2)
    b = HoldoutPredictions(a.fingerprint, a.y.copy(), a.pred.copy(), a.scores.copy())
    out = compare_models([_entry("m1", a, t=1), _entry("m2", b, t=2)])
    assert out["winner"] is None and out["improvement"] == {}
    assert out["same_holdout"] is True and out["paired"] is True
    (diff,) = out["differences"]
    assert diff["model_id"] == "m2" and diff["versus"] == "m1"  # a tie goes to the newer model as candidate
    assert diff["records"] == {"shared": 1500}
    for metric, figures in diff["metrics"].items():
        assert figures["diff"] == 0 and figures["ci_low"] == 0 and figures["ci_high"] == 0, metric
        assert figures["conclusive"] is False and figures["level"] == LEVEL
    assert out["reason"].startswith("no difference is conclusive: f1 +0.000, 95% CI [+0.000, +0.000] on 1,500")
    assert out["method"]["resamples"] == 2000 and out["method"]["adjustment"] is None
    # the seed's fields keep their shape
    assert [r["model_id"] for r in out["comparison"]] == ["m1", "m2"]


def test_a_clearly_better_model_wins_with_its_interval() -> None:
    y = _truth(2000, 0.05, 3)
    good, poor = _predictor(y, 0.98, 4), _predictor(y, 0.85, 5)
    out = compare_models([_entry("poor", poor, t=2), _entry("good", good, t=1)])
    assert out["winner"] == "good" and out["leader"] == "good"
    f1 = out["differences"][0]["metrics"]["f1_score"]
    assert f1["conclusive"] is True and 0 < f1["ci_low"] <= f1["diff"] <= f1["ci_high"]
    rows = {r["model_id"]: r for r in out["comparison"]}
    assert out["improvement"]["f1_score"] == round(rows["good"]["f1_score"] - rows["poor"]["f1_score"], 4)
    assert out["reason"].startswith("good has a conclusively higher f1_score than poor: f1 +")
    assert "shared hold-out records" in out["reason"]


def test_small_differences_are_inconclusive_and_the_reason_says_so() -> None:
    y = _truth(1200, 0.05, 6)
    a = _predictor(y, 0.95, 7)
    flip = a.pred.copy()
    flip[np.flatnonzero(y == 1)[:1]] ^= 1  # one record apart
    b = HoldoutPredictions(a.fingerprint, y, flip, a.scores)
    out = compare_models([_entry("a", a), _entry("b", b)])
    assert out["winner"] is None and out["leader"] == "a"
    f1 = out["differences"][0]["metrics"]["f1_score"]
    assert f1["diff"] > 0 and f1["ci_low"] <= 0 < f1["ci_high"] and not f1["conclusive"]
    assert "no difference is conclusive" in out["reason"] and "1,200 shared hold-out records" in out["reason"]


def test_three_models_are_compared_with_bonferroni() -> None:
    y = _truth(1500, 0.05, 8)
    preds = {"best": _predictor(y, 0.99, 9), "mid": _predictor(y, 0.9, 10), "low": _predictor(y, 0.8, 11)}
    out = compare_models([_entry(k, v) for k, v in preds.items()])
    method = out["method"]
    assert method["comparisons"] == 2 and method["adjustment"] == "bonferroni"
    assert method["interval_level"] == 0.975 and method["resamples"] == resamples_for(2) == 4000
    assert [d["versus"] for d in out["differences"]] == ["mid", "low"]
    assert all(d["metrics"]["f1_score"]["level"] == 0.975 for d in out["differences"])
    assert out["winner"] == "best" and "Bonferroni: 95% over 2 comparisons" in out["reason"]


def test_different_holdouts_are_compared_unpaired() -> None:
    a = _predictor(_truth(1500, 0.05, 12), 0.97, 13, fp="a" * 64)
    b = _predictor(_truth(1400, 0.05, 14), 0.97, 15, fp="b" * 64)
    out = compare_models([_entry("a", a), _entry("b", b)])
    assert out["same_holdout"] is False and out["paired"] is False
    diff = out["differences"][0]
    assert diff["paired"] is False and diff["records"] == {
        diff["model_id"]: len(a if diff["model_id"] == "a" else b),
        diff["versus"]: len(b if diff["model_id"] == "a" else a),
    }
    assert out["winner"] is None and out["reason"].startswith("the hold-outs differ")


def test_a_model_without_stored_predictions_cannot_win() -> None:
    y = _truth(1500, 0.05, 16)
    good = _predictor(y, 0.99, 17)
    old = _entry("old", None, metrics={"f1_score": 0.2, "roc_auc": 0.6, "accuracy": 0.9})
    out = compare_models([_entry("good", good), old])
    assert out["winner"] is None and out["same_holdout"] is None and out["paired"] is False
    diff = out["differences"][0]
    assert diff["method"] == "none" and diff["metrics"]["f1_score"]["ci_low"] is None
    assert "old has no stored hold-out predictions" in out["reason"]


def test_models_without_labels_are_not_comparable() -> None:
    with pytest.raises(NotComparable):
        compare_models([_entry("a", None, metrics={"anomaly_rate": 0.02}), _entry("b", None, metrics={})])
    y = _truth(500, 0.1, 18)
    out = compare_models([_entry("a", _predictor(y, 0.9, 19)), _entry("u", None, metrics={"anomaly_rate": 0.1})])
    assert out["winner"] is None and out["differences"] == []
    assert out["reason"].startswith("only a has a labelled hold-out")


def test_the_answer_is_deterministic() -> None:
    y = _truth(1000, 0.05, 20)
    entries = [_entry("a", _predictor(y, 0.95, 21)), _entry("b", _predictor(y, 0.93, 22))]
    first, again = compare_models(entries), compare_models(list(reversed(entries)))
    assert first["comparison"] == again["comparison"][::-1]  # rows follow the request's order
    assert {k: v for k, v in first.items() if k != "comparison"} == {
        k: v for k, v in again.items() if k != "comparison"
    }


def test_interval_coverage_is_about_the_stated_level() -> None:
    """Two classifiers right with probability 0.90 and 0.85 on independent records: the paired 95 %
    interval of the accuracy difference covers the true 0.05 in about 95 % of hold-outs."""
    covered, trials = 0, 120
    for t in range(trials):
        y = _truth(400, 0.3, 1000 + t)
        a = _predictor(y, 0.90, 2000 + t, fp=f"{t:064x}")
        b = _predictor(y, 0.85, 3000 + t, fp=f"{t:064x}")
        sa, sb = bootstrap([a, b], 1000, seed=t)
        ci = interval(observed(a)["accuracy"] - observed(b)["accuracy"], sa["accuracy"] - sb["accuracy"], 0.95)
        assert ci.ci_low is not None and ci.ci_high is not None
        covered += ci.ci_low <= 0.05 <= ci.ci_high
    assert 0.88 <= covered / trials <= 0.99, covered


def test_bootstrap_metrics_match_the_training_metrics_with_tied_scores() -> None:
    y = _truth(800, 0.1, 23)
    scores = np.round(np.random.default_rng(24).random(800) * 0.6 + 0.4 * y, 1)  # many ties
    pred = HoldoutPredictions(FP, y, (scores >= 0.5).astype(np.int8), scores)
    got = observed(pred)
    want = binary_metrics(y, pred.pred, scores)
    assert {k: round(v, 4) for k, v in got.items()} == want
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, scores))


def test_the_holdout_fingerprint_and_stored_bytes() -> None:
    ds = Dataset(
        np.arange(12, dtype=np.float32).reshape(6, 2),
        np.array([0, 1, 0, 0, 1, 0], np.int8),
        np.arange(6, dtype=np.float64),
        ["a", "b"],
    )
    assert fingerprint(ds) == fingerprint(Dataset(ds.X.copy(), ds.y.copy(), ds.timestamps.copy(), ["a", "b"]))
    relabelled = ds.y.copy()
    relabelled[0] = 1
    assert fingerprint(ds) != fingerprint(Dataset(ds.X, relabelled, ds.timestamps, ["a", "b"]))
    assert fingerprint(ds) != fingerprint(Dataset(ds.X, ds.y, ds.timestamps + 1, ["a", "b"]))
    stored = HoldoutPredictions.of(ds, np.array([0, 1, 1, 0, 0, 0]), np.linspace(0, 1, 6))
    back = HoldoutPredictions.from_bytes(stored.to_bytes())
    assert back.fingerprint == fingerprint(ds)
    assert (back.y == ds.y).all() and (back.pred == stored.pred).all() and (back.scores == stored.scores).all()


def test_training_stores_predictions_that_reproduce_its_metrics() -> None:
    records = transactions(date(2025, 10, 1), date(2025, 10, 10), per_day=150, seed=3)
    data = to_dataset(records)
    for model_type, params in (("lightgbm", {"n_estimators": 20}), ("isolation_forest", {"n_estimators": 20})):
        outcome = train_tabular(model_type, params, data, num_threads=1)
        assert outcome.predictions is not None
        assert outcome.predictions.fingerprint == outcome.holdout["records_sha256"]
        assert len(outcome.predictions) == outcome.holdout["test_records"]
        again = {k: round(v, 4) for k, v in observed(outcome.predictions).items()}
        assert again == {k: outcome.metrics[k] for k in again}, model_type
