"""Which of several models is better, with the uncertainty of a finite hold-out. Pure: no I/O.

The candidate is the model with the highest hold-out ``f1_score`` (ties: higher ``roc_auc``, then the newer
model). It is compared with each other model by bootstrap over hold-out records:

* **paired** when both models were evaluated on the same hold-out (equal fingerprints, see
  ``ml/tabular/holdout.py``): each resample draws records with replacement and scores both models on the
  *same* resampled records, so what the models share cancels out;
* **unpaired** when the hold-outs differ: each model's own hold-out is resampled independently (this treats
  the two hold-outs as samples of one population, which a different period may not be);
* not at all when a model has no stored per-record predictions (trained before they were stored).

Intervals are percentile intervals of the difference (candidate minus other), seeded so the same models
always give the same answer. With k other models the family-wise level is kept by Bonferroni: each interval
is at 1 - (1 - level) / k, and the number of resamples grows with k so every tail holds
``TAIL_RESAMPLES`` resamples. Only ``f1_score`` decides: the candidate wins when its f1 interval against
every other model lies above 0; the other metrics' intervals are descriptive (same level, not adjusted for
the number of metrics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.tabular.holdout import HoldoutPredictions

METRICS = ("accuracy", "precision", "recall", "f1_score", "roc_auc", "false_positive_rate")
IMPROVEMENT = ("accuracy", "precision", "recall", "f1_score", "roc_auc")
PRIMARY = "f1_score"
LEVEL = 0.95
SEED = 20251116
TAIL_RESAMPLES = 50
"""resamples beyond each end of an interval: 2,000 resamples for one comparison at 95 %"""
MAX_RESAMPLES = 10_000
"""a bound on the work (~0.05 s per model and 1,000 resamples of 2,000 records on this machine): beyond four
comparisons the tails hold fewer than ``TAIL_RESAMPLES`` (13 each with nineteen)"""
CHUNK = 256
"""resamples scored at once (bounded memory: CHUNK x hold-out records counts)"""
MIN_DEFINED_SHARE = 0.5
"""an interval needs the metric defined in at least this share of resamples (ROC AUC needs both classes)"""


class NotComparable(ValueError):
    """None of the models has a labelled hold-out (no ``f1_score``)."""


@dataclass(frozen=True)
class Entry:
    """One model as the comparison sees it."""

    model_id: str
    metrics: dict[str, Any]
    """the hold-out metrics stored at training time"""
    trained_at: Any
    """orders ties (newer wins); any comparable value"""
    holdout_sha256: str | None = None
    """fingerprint of its hold-out (None: trained before fingerprints were stored)"""
    predictions: HoldoutPredictions | None = None


@dataclass(frozen=True)
class Interval:
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    conclusive: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "diff": self.diff,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "level": self.level,
            "conclusive": self.conclusive,
        }


@dataclass(frozen=True)
class Difference:
    model_id: str
    versus: str
    kind: str
    """"paired", "unpaired" or "none" (no interval: a model has no stored hold-out predictions)"""
    records: dict[str, int]
    metrics: dict[str, Interval] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "versus": self.versus,
            "paired": self.kind == "paired",
            "method": self.kind,
            "records": self.records,
            "metrics": {m: i.as_dict() for m, i in self.metrics.items()},
        }


# -- metrics on resampled records ----------------------------------------------------------------------------


def resample_counts(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` bootstrap resamples of ``n`` records as multiplicities: row b says how often each record
    was drawn in resample b (each row sums to ``n``)."""
    idx = rng.integers(0, n, size=(size, n))
    flat = (idx + (np.arange(size) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's ``zero_division=0``, as ``binary_metrics`` does)."""
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _auc(pred: HoldoutPredictions, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample (ties count one half, as scikit-learn); NaN without both classes."""
    order = np.argsort(pred.scores, kind="stable")
    scores = pred.scores[order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    pos = (pred.y[order] == 1).astype(np.float64)
    w = counts[:, order]
    p_level = np.add.reduceat(w * pos, starts, axis=1)
    n_level = np.add.reduceat(w * (1.0 - pos), starts, axis=1)
    below = np.cumsum(n_level, axis=1) - n_level
    total_p, total_n = p_level.sum(axis=1), n_level.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (p_level * (below + 0.5 * n_level)).sum(axis=1) / (total_p * total_n)
    return np.where((total_p > 0) & (total_n > 0), auc, np.nan)


def metric_samples(pred: HoldoutPredictions, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of ``METRICS`` for each row of ``counts`` (record multiplicities)."""
    y = pred.y.astype(np.float64)
    p = pred.pred.astype(np.float64)
    tp, fp = counts @ (y * p), counts @ ((1 - y) * p)
    fn, tn = counts @ (y * (1 - p)), counts @ ((1 - y) * (1 - p))
    return {
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1_score": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": _auc(pred, counts),
        "false_positive_rate": _ratio(fp, fp + tn),
    }


def observed(pred: HoldoutPredictions) -> dict[str, float]:
    """The metrics on the hold-out itself (every record once)."""
    return {m: float(v[0]) for m, v in metric_samples(pred, np.ones((1, len(pred)))).items()}


def bootstrap(preds: Sequence[HoldoutPredictions], resamples: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``resamples`` values of every metric for each of ``preds``, which share one hold-out: every model is
    scored on the same resampled records (paired). The stream depends on ``seed`` and the hold-out's
    fingerprint only, so the answer does not depend on which other models are compared."""
    first = preds[0]
    if any(p.fingerprint != first.fingerprint for p in preds):
        raise ValueError("bootstrap() pairs models of one hold-out only")
    rng = np.random.default_rng([seed, int(first.fingerprint[:15], 16)])
    parts: list[dict[str, list[np.ndarray]]] = [{m: [] for m in METRICS} for _ in preds]
    done = 0
    while done < resamples:
        size = min(CHUNK, resamples - done)
        counts = resample_counts(len(first), size, rng)
        for pred, part in zip(preds, parts, strict=True):
            for metric, values in metric_samples(pred, counts).items():
                part[metric].append(values)
        done += size
    return [{m: np.concatenate(v) for m, v in part.items()} for part in parts]


def interval(diff: float | None, samples: np.ndarray, level: float) -> Interval:
    """Percentile interval of the difference's bootstrap distribution at ``level``."""
    finite = samples[np.isfinite(samples)]
    if diff is None or len(finite) < MIN_DEFINED_SHARE * len(samples):
        return Interval(diff, None, None, level, False)
    alpha = 1 - level
    low, high = (float(q) for q in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
    low, high = round(low, 4), round(high, 4)
    return Interval(diff, low, high, level, low > 0 or high < 0)


def resamples_for(comparisons: int, level: float = LEVEL) -> int:
    """Enough resamples that each tail of an interval at the Bonferroni level holds ``TAIL_RESAMPLES``
    (2,000 for one comparison at 95 %), at most ``MAX_RESAMPLES``."""
    per_tail = (1 - level) / max(comparisons, 1) / 2
    return min(MAX_RESAMPLES, int(math.ceil(TAIL_RESAMPLES / per_tail / 1000) * 1000))


# -- choosing a winner ---------------------------------------------------------------------------------------


def _rank(entry: Entry) -> tuple[float, float, Any]:
    auc = entry.metrics.get("roc_auc")
    return (float(entry.metrics[PRIMARY]), float(auc) if auc is not None else -1.0, entry.trained_at)


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 4) if a is not None and b is not None else None


def _fmt(d: Difference, level: float, *, named: bool) -> str:
    """``[vs other: ]f1 +0.004, 95% CI [-0.031, +0.040] on 1,143 shared hold-out records``"""
    f1 = d.metrics[PRIMARY]
    head = (f"vs {d.versus}: " if named else "") + (f"f1 {f1.diff:+.3f}" if f1.diff is not None else "f1 unknown")
    if f1.ci_low is None or f1.ci_high is None:
        return head + " (no interval)"
    where = (
        f"on {d.records['shared']:,} shared hold-out records"
        if d.kind == "paired"
        else f"unpaired, hold-outs of {d.records[d.model_id]:,} and {d.records[d.versus]:,} records"
    )
    return f"{head}, {_pct(level)} CI [{f1.ci_low:+.3f}, {f1.ci_high:+.3f}] {where}"


def _pct(level: float) -> str:
    return f"{level * 100:.4g}%"


def compare_models(entries: Sequence[Entry], *, level: float = LEVEL, seed: int = SEED) -> dict[str, Any]:
    """The comparison response: the seed's ``comparison``, ``winner`` and ``improvement`` (the winner's
    figures minus the best other model's; empty without a winner), plus ``leader``, ``same_holdout``,
    ``paired``, ``differences``, ``reason`` and ``method``. Raises ``NotComparable`` when no model has a
    labelled hold-out."""
    rows = [{"model_id": e.model_id, **{m: e.metrics.get(m) for m in METRICS}} for e in entries]
    scored = sorted((e for e in entries if e.metrics.get(PRIMARY) is not None), key=_rank, reverse=True)
    if not scored:
        raise NotComparable("none of these models has hold-out labels (f1_score); train on labelled records")
    fingerprints = {e.holdout_sha256 for e in entries}
    same_holdout = None if None in fingerprints else len(fingerprints) == 1
    leader, others = scored[0], scored[1:]
    k = len(others)
    interval_level = round(1 - (1 - level) / max(k, 1), 6)
    resamples = resamples_for(k, level)
    samples = _samples(scored, resamples, seed) if leader.predictions is not None else {}
    differences = [_difference(leader, other, interval_level, samples) for other in others]
    unscored = [e.model_id for e in entries if e.metrics.get(PRIMARY) is None]
    won = bool(differences) and all(
        d.metrics[PRIMARY].ci_low is not None and d.metrics[PRIMARY].ci_low > 0 for d in differences
    )
    winner = leader.model_id if won else None
    improvement: dict[str, float] = {}
    if winner is not None:
        runner_up = others[0]
        for metric in IMPROVEMENT:
            value = _diff(leader.metrics.get(metric), runner_up.metrics.get(metric))
            if value is not None:
                improvement[metric] = value
    return {
        "comparison": rows,
        "winner": winner,
        "improvement": improvement,
        "leader": leader.model_id,
        "same_holdout": same_holdout,
        "paired": bool(differences) and all(d.kind == "paired" for d in differences),
        "differences": [d.as_dict() for d in differences],
        "reason": _reason(leader, differences, interval_level, level, unscored),
        "method": {
            "primary_metric": PRIMARY,
            "candidate": "the highest hold-out f1_score (ties: higher roc_auc, then the newer model), "
            "compared with each other model; it wins only if every f1 interval lies above 0",
            "resampling": "bootstrap over hold-out records: paired (the same resampled records for both "
            "models) when the hold-outs are the same, else each hold-out resampled independently",
            "interval": "percentile",
            "resamples": resamples,
            "seed": seed,
            "level": level,
            "comparisons": k,
            "adjustment": "bonferroni" if k > 1 else None,
            "interval_level": interval_level,
            "note": "only f1_score decides; the other metrics' intervals are descriptive and not adjusted "
            "for the number of metrics",
        },
    }


def _samples(entries: Sequence[Entry], resamples: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """model id -> its bootstrap values, computed per hold-out (models of one hold-out share resamples)."""
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        if e.predictions is not None:
            groups.setdefault(e.predictions.fingerprint, []).append(e)
    out: dict[str, dict[str, np.ndarray]] = {}
    for group in groups.values():
        values = bootstrap([e.predictions for e in group if e.predictions is not None], resamples, seed)
        out |= {e.model_id: v for e, v in zip(group, values, strict=True)}
    return out


def _difference(leader: Entry, other: Entry, level: float, samples: dict[str, dict[str, np.ndarray]]) -> Difference:
    """Candidate minus ``other`` on every metric, from the bootstrap values in ``samples``."""
    a, b = leader.predictions, other.predictions
    if a is None or b is None:
        metrics = {
            m: Interval(_diff(leader.metrics.get(m), other.metrics.get(m)), None, None, level, False) for m in METRICS
        }
        return Difference(leader.model_id, other.model_id, "none", {}, metrics)
    paired = a.fingerprint == b.fingerprint
    if paired and not np.array_equal(a.y, b.y):  # cannot happen with equal fingerprints; never pair silently
        raise ValueError("equal hold-out fingerprints with different labels")
    sa, sb = samples[leader.model_id], samples[other.model_id]
    oa, ob = observed(a), observed(b)
    metrics = {m: interval(_diff(oa[m], ob[m]), sa[m] - sb[m], level) for m in METRICS}
    records = {"shared": len(a)} if paired else {leader.model_id: len(a), other.model_id: len(b)}
    return Difference(leader.model_id, other.model_id, "paired" if paired else "unpaired", records, metrics)


def _reason(leader: Entry, diffs: list[Difference], level: float, family: float, unscored: list[str]) -> str:
    tail = f" ({len(unscored)} without a labelled hold-out not compared: {', '.join(unscored)})" if unscored else ""
    adjust = f" (Bonferroni: {_pct(family)} over {len(diffs)} comparisons)" if len(diffs) > 1 else ""
    if not diffs:
        return f"only {leader.model_id} has a labelled hold-out: there is nothing to compare it with{tail}"
    missing = [d.versus for d in diffs if d.kind == "none"]
    if missing or leader.predictions is None:
        without = sorted({*missing} | ({leader.model_id} if leader.predictions is None else set()))
        return (
            f"no winner: {', '.join(without)} {'has' if len(without) == 1 else 'have'} no stored hold-out "
            "predictions (trained before they were stored), so no interval can be computed; the metrics "
            f"are shown as measured{tail}"
        )
    prefix = (
        ""
        if all(d.kind == "paired" for d in diffs)
        else "the hold-outs differ, so the models cannot be compared on the same records (unpaired intervals "
        "from each model's own hold-out; a different period may differ by itself): "
    )
    won = [d for d in diffs if (d.metrics[PRIMARY].ci_low or 0) > 0]
    named = len(diffs) > 1
    if len(won) == len(diffs):
        detail = "; ".join(_fmt(d, level, named=named) for d in diffs)
        return (
            f"{prefix}{leader.model_id} has a conclusively higher f1_score than {_others(diffs)}{adjust}: "
            f"{detail}{tail}"
        )
    open_ = [d for d in diffs if d not in won]
    detail = "; ".join(_fmt(d, level, named=named) for d in open_)
    if not won:
        return f"{prefix}no difference is conclusive{adjust}: {detail}{tail}"
    return (
        f"{prefix}{leader.model_id} has the highest f1_score but is not conclusively better than "
        f"{_others(open_)}{adjust}: {detail}{tail}"
    )


def _others(diffs: list[Difference]) -> str:
    return ", ".join(d.versus for d in diffs)
