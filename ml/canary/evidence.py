"""The durable evidence of a canary (or shadow) analysis: joined predictions, and the strata they add up to.

A **prediction record** is one document per prediction id (the ``predictions`` projection). It is folded
from three kinds of facts, in any order, each at most once:

* what the caller got (``predict.served``, arm ``baseline`` or ``canary``): ``model_id``, ``arm``,
  ``canary_id``, ``percentage`` (the canary's traffic share when it was served), the predicted
  ``label``, ``score``, ``error``, ``latency_ms`` and ``time``;
* what a shadow model would have answered (``predict.served``, arm ``shadow``, the same prediction id):
  the ``shadow`` sub-document;
* the ground truth (``predict.feedback``): ``truth`` and ``truth_at``. The first label wins.

A label that arrives before its prediction waits in its record (an *unmatched* label) until the
prediction arrives: nothing is kept in memory, so however many predictions wait for labels, and for
however long, memory stays bounded.

Each record **contributes** counts to the strata of the analyses it belongs to
(:func:`contributions`): a stratum is ``(analysis id, traffic step, block)``, where the step is the
canary's traffic percentage when the prediction was served and the block the ``BLOCK_SECONDS`` slice of
serving time it fell in. Per arm a stratum counts requests, errors, the latency histogram of successful
requests, the confusion matrix of labelled successful predictions and the labels that came too late.
Contributions are a pure function of the record (and of when each analysis stopped taking labels), so:

* the stored strata are updated by ``contributions(new) - contributions(old)`` whenever a record
  changes, in the same transaction as the record: a redelivered event changes no record and adds
  nothing (exactly once over an at-least-once stream);
* replay rebuilds them as the sum of the contributions of the rebuilt records: the same numbers.

:class:`Evidence` holds one analysis's strata in memory (loaded from the stored strata, then kept up to
date with the deltas); :mod:`ml.canary.analysis` decides from it.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from operator import itemgetter
from typing import Any, Literal

from ml.canary.stats import HIST_GROWTH, HIST_MIN_MS, bucket_bounds, latency_bucket, wilson_interval
from schemas.deploy import UNMATCHED_LABELS

BLOCK_SECONDS = 600
"""Length of a time block of the strata: predictions served in the same 10 minutes of the same traffic
step are compared with each other. A constant, not a setting: the stored strata and the ones replay
rebuilds must be cut the same way."""

ArmCode = Literal["b", "c", "s"]
ARM_CODE: dict[str, ArmCode] = {"baseline": "b", "canary": "c", "shadow": "s"}
ARM_NAME: dict[str, str] = {code: name for name, code in ARM_CODE.items()}
UNMATCHED = UNMATCHED_LABELS
"""Stratum id of labels whose prediction has not been seen (yet): one counter, ``labels``."""
CELLS = ("tn", "fn", "fp", "tp")  # index 2 * predicted + truth

Doc = dict[str, Any]
Counts = dict[str, int]
"""Flat counters of one stratum: ``"<arm>.<field>"`` (``c.requests``, ``b.tp``, ``s.h.512`` …)."""
StratumId = str
HorizonEnd = Callable[[str], datetime | None]
"""analysis id -> the time after which its labels are too late (``None``: still taking labels)."""


def _ts(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def block_of(when: datetime) -> int:
    return int(_ts(when) // BLOCK_SECONDS)


def stratum_id(analysis_id: str, step: float, block: int) -> StratumId:
    return f"{analysis_id}|{step:g}|{block}"


def parse_stratum_id(value: StratumId) -> tuple[str, float, int]:
    analysis_id, step, block = value.rsplit("|", 2)
    return analysis_id, float(step), int(block)


# --- folding facts into a prediction record -------------------------------------------------------
def fold_served(doc: Doc | None, served: Mapping[str, Any], time: datetime) -> Doc | None:
    """The record with a served prediction added (``None`` if it changes nothing: a repeated event).

    ``served`` is a ``predict.served`` payload; ``arm == "shadow"`` fills the ``shadow`` sub-document.
    """
    doc = {} if doc is None else dict(doc)
    if served.get("arm") == "shadow":
        if doc.get("shadow") is not None:
            return None
        doc["shadow"] = {
            "shadow_id": served.get("shadow_id"),
            "model_id": served.get("model_id"),
            "sample_percentage": served.get("percentage"),
            "label": served.get("label"),
            "score": served.get("score"),
            "error": served.get("error"),
            "latency_ms": served.get("latency_ms"),
            "time": time,
        }
        if served.get("latency_observed") is False:
            doc["shadow"]["latency_observed"] = False
        return doc
    if doc.get("time") is not None:
        return None
    doc |= {
        "model_id": served.get("model_id"),
        "arm": served.get("arm"),
        "canary_id": served.get("canary_id"),
        "percentage": served.get("percentage"),
        "label": served.get("label"),
        "score": served.get("score"),
        "error": served.get("error"),
        "latency_ms": served.get("latency_ms"),
        "time": time,
    }
    if served.get("latency_observed") is False:
        doc["latency_observed"] = False
    return doc


def fold_feedback(doc: Doc | None, label: int, time: datetime) -> Doc | None:
    """The record with its ground truth; ``None`` when it already has one (the first label wins)."""
    if doc is not None and doc.get("truth") is not None:
        return None
    return (dict(doc) if doc else {}) | {"truth": int(label), "truth_at": time}


# --- contributions ------------------------------------------------------------------------------------
def _add(counts: Counts, key: str, value: int = 1) -> None:
    counts[key] = counts.get(key, 0) + value


def _arm_counts(
    counts: Counts, arm: ArmCode, part: Mapping[str, Any], truth: int | None, too_late: bool
) -> None:
    _add(counts, f"{arm}.requests")
    if part.get("error") is not None or part.get("label") not in (0, 1):
        _add(counts, f"{arm}.errors")
        return
    _add(counts, f"{arm}.ok")
    if part.get("latency_observed", True):  # records scored in one model call share one latency observation
        latency = max(float(part.get("latency_ms") or 0.0), 0.0)
        _add(counts, f"{arm}.lat_n")
        _add(counts, f"{arm}.lat_us", round(latency * 1000))
        _add(counts, f"{arm}.h.{latency_bucket(latency)}")
    if truth is not None:
        _add(counts, f"{arm}.too_late" if too_late else f"{arm}.{CELLS[2 * int(part['label']) + truth]}")


def contributions(doc: Mapping[str, Any] | None, horizon_end: HorizonEnd) -> dict[StratumId, Counts]:
    """What one prediction record adds to the strata of the analyses it belongs to.

    * served on a canary's arm (``canary_id`` set): its stratum ``(canary, step, block)``, arm ``c`` or ``b``;
    * scored by a shadow *and* answered by production (arm ``baseline``): the shadow's stratum, with
      production's answer on arm ``b`` and the shadow's on arm ``s`` (paired on the same request);
    * a label without its prediction: ``UNMATCHED``'s ``labels`` counter.

    A label counts (in the confusion matrix) unless it arrived after the analysis's ``horizon_end``; then
    it counts in ``too_late``. A failed prediction counts as a request and an error, never as labelled.
    """
    if not doc:
        return {}
    out: dict[StratumId, Counts] = {}
    truth = doc.get("truth")
    served = doc.get("time") is not None and doc.get("arm") in ("baseline", "canary")
    shadow = doc.get("shadow")
    if not served:
        if truth is not None and shadow is None:
            out[UNMATCHED] = {"labels": 1}
        return out

    def late(analysis_id: str) -> bool:
        end = horizon_end(analysis_id)
        return truth is not None and end is not None and _ts(doc["truth_at"]) > _ts(end)

    block = block_of(doc["time"])
    canary_id = doc.get("canary_id")
    if canary_id:
        counts = out.setdefault(stratum_id(canary_id, float(doc.get("percentage") or 0.0), block), {})
        _arm_counts(counts, ARM_CODE[doc["arm"]], doc, truth, late(canary_id))
    if shadow is not None and shadow.get("shadow_id") and doc["arm"] == "baseline":
        shadow_id = shadow["shadow_id"]
        too_late = late(shadow_id)
        counts = out.setdefault(stratum_id(shadow_id, float(shadow.get("sample_percentage") or 100.0), block), {})
        _arm_counts(counts, "b", doc, truth, too_late)
        _arm_counts(counts, "s", shadow, truth, too_late)
    return out


def delta(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, horizon_end: HorizonEnd) -> dict[
    StratumId, Counts
]:
    """``contributions(new) - contributions(old)``, without the counters that did not change."""
    before, after = contributions(old, horizon_end), contributions(new, horizon_end)
    out: dict[StratumId, Counts] = {}
    for sid in before.keys() | after.keys():
        b, a = before.get(sid, {}), after.get(sid, {})
        diff = {k: a.get(k, 0) - b.get(k, 0) for k in a.keys() | b.keys()}
        diff = {k: v for k, v in diff.items() if v}
        if diff:
            out[sid] = diff
    return out


def merge_into(total: dict[StratumId, Counts], more: Mapping[StratumId, Counts]) -> None:
    """Adds ``more`` into ``total`` in place."""
    for sid, counts in more.items():
        target = total.setdefault(sid, {})
        for key, value in counts.items():
            _add(target, key, value)


def nest(counts: Mapping[str, int]) -> dict[str, Any]:
    """Flat counters as the nested document MongoDB stores (``c.h.512`` -> ``{"c": {"h": {"512": n}}}``)."""
    out: dict[str, Any] = {}
    for key, value in counts.items():
        node = out
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def flatten(nested: Mapping[str, Any], prefix: str = "") -> Counts:
    """The inverse of :func:`nest`."""
    out: Counts = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = int(value)
    return out


def strata_docs(counts: Mapping[StratumId, Counts]) -> list[Doc]:
    """The stored form of strata (one document per stratum; zero counters dropped)."""
    docs = []
    for sid in sorted(counts):
        kept = {k: v for k, v in counts[sid].items() if v}
        if not kept:
            continue
        doc: Doc = {"_id": sid, "counts": nest(kept)}
        if sid != UNMATCHED:
            analysis_id, step, block = parse_stratum_id(sid)
            doc |= {"analysis_id": analysis_id, "step": step, "block": block}
        docs.append(doc)
    return docs


# --- per-arm figures -------------------------------------------------------------------------------
def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None or precision + recall == 0.0:
        return None
    return 2 * precision * recall / (precision + recall)


class Confusion:
    """Sums over the confusion-matrix counts ``tn``, ``fn``, ``fp``, ``tp`` (fields of the dataclasses below)."""

    __slots__ = ()
    tn: int
    fn: int
    fp: int
    tp: int

    @property
    def labelled(self) -> int:
        return self.tn + self.fn + self.fp + self.tp

    @property
    def correct(self) -> int:
        return self.tn + self.tp


@dataclass(slots=True)
class ArmCounts(Confusion):
    """One arm's counters in one stratum (or pooled over several)."""

    requests: int = 0
    errors: int = 0
    ok: int = 0
    """successful requests"""
    lat_n: int = 0
    """latency observations (a model call that scored several records at once is one)"""
    lat_us: int = 0
    hist: dict[int, int] = field(default_factory=dict)
    tn: int = 0
    fn: int = 0
    fp: int = 0
    tp: int = 0
    too_late: int = 0

    def add(self, key: str, value: int) -> None:
        if key.startswith("h."):
            bucket = int(key[2:])
            count = self.hist.get(bucket, 0) + value
            if count:
                self.hist[bucket] = count
            else:
                self.hist.pop(bucket, None)
        else:
            setattr(self, key, getattr(self, key) + value)

    def merge(self, other: ArmCounts) -> None:
        for name in ("requests", "errors", "ok", "lat_n", "lat_us", "tn", "fn", "fp", "tp", "too_late"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for bucket, count in other.hist.items():
            self.hist[bucket] = self.hist.get(bucket, 0) + count

    @property
    def waiting(self) -> int:
        """Successful predictions with no label (yet)."""
        return self.ok - self.labelled - self.too_late

    def totals(self, arm: str, model_id: str | None = None) -> ArmTotals:
        return ArmTotals(
            arm=arm,
            model_id=model_id,
            requests=self.requests,
            errors=self.errors,
            successful=self.ok,
            latency_count=self.lat_n,
            latency_sum_ms=self.lat_us / 1000.0,
            latency_buckets=tuple(sorted((b, c) for b, c in self.hist.items() if c)),
            tn=self.tn,
            fn=self.fn,
            fp=self.fp,
            tp=self.tp,
            too_late=self.too_late,
        )


@dataclass(frozen=True, slots=True)
class ArmTotals(Confusion):
    """An arm's figures pooled over strata: descriptive figures, latency quantiles and their bounds.

    ``latency_buckets`` is the sorted ``(bucket, count)`` log histogram of successful requests' latencies
    (see :mod:`ml.canary.stats`).
    """

    arm: str
    model_id: str | None = None
    requests: int = 0
    errors: int = 0
    successful: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_buckets: tuple[tuple[int, int], ...] = ()
    tn: int = 0
    fn: int = 0
    fp: int = 0
    tp: int = 0
    too_late: int = 0
    _cumulative: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cumulative", tuple(accumulate(map(itemgetter(1), self.latency_buckets))))

    def _bucket_at_rank(self, rank: int) -> int:
        """Histogram bucket holding the ``rank``-th smallest latency (1-based)."""
        return self.latency_buckets[bisect_left(self._cumulative, rank)][0]

    @property
    def waiting(self) -> int:
        return self.successful - self.labelled - self.too_late

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.correct, self.labelled)

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return _f1(self.precision, self.recall)

    @property
    def error_rate(self) -> float | None:
        return _ratio(self.errors, self.requests)

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_sum_ms / self.latency_count if self.latency_count else None

    def latency_quantile(self, q: float) -> float | None:
        """Estimated ``q``-quantile of latency (geometric middle of its 1 % bucket), ``None`` if no data."""
        if not self.latency_count:
            return None
        low, high = bucket_bounds(self._bucket_at_rank(max(1, math.ceil(q * self.latency_count))))
        return math.sqrt(low * high) if low > 0 else high / 2

    def summary(self) -> dict[str, Any]:
        """JSON-friendly descriptive figures. The intervals are fixed-sample 95 % Wilson intervals of this arm
        alone: they describe, they are not valid under repeated looks and the verdict never uses them."""

        def ci(successes: int, n: int) -> list[float] | None:
            interval = wilson_interval(successes, n)
            return [round(interval[0], 4), round(interval[1], 4)] if interval else None

        return {
            "arm": self.arm,
            "model_id": self.model_id,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_mean_ms": self.mean_latency_ms,
            "latency_p50_ms": self.latency_quantile(0.50),
            "latency_p95_ms": self.latency_quantile(0.95),
            "latency_p99_ms": self.latency_quantile(0.99),
            "labelled": self.labelled,
            "waiting_for_label": self.waiting,
            "labels_too_late": self.too_late,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "accuracy_ci": ci(self.correct, self.labelled),
            "precision": self.precision,
            "precision_ci": ci(self.tp, self.tp + self.fp),
            "recall": self.recall,
            "recall_ci": ci(self.tp, self.tp + self.fn),
            "f1": self.f1,
            "confusion": {"tn": self.tn, "fn": self.fn, "fp": self.fp, "tp": self.tp},
            "descriptive": True,
        }

    @classmethod
    def from_counts(
        cls,
        arm: str,
        *,
        requests: int,
        errors: int = 0,
        latencies_ms: Iterable[float] = (),
        tn: int = 0,
        fn: int = 0,
        fp: int = 0,
        tp: int = 0,
        model_id: str | None = None,
    ) -> ArmTotals:
        """Totals from plain counts and raw latencies (for tests)."""
        counts = ArmCounts(requests=requests, errors=errors, tn=tn, fn=fn, fp=fp, tp=tp)
        for value in latencies_ms:
            counts.ok += 1
            counts.lat_n += 1
            counts.lat_us += round(value * 1000)
            counts.add(f"h.{latency_bucket(value)}", 1)
        return counts.totals(arm, model_id)


HISTOGRAM_LAYOUT = {"min_ms": HIST_MIN_MS, "growth": HIST_GROWTH}


# --- one analysis's strata in memory ---------------------------------------------------------------
@dataclass(slots=True)
class Stratum:
    step: float
    block: int
    arms: dict[str, ArmCounts] = field(default_factory=dict)

    def arm(self, code: str) -> ArmCounts:
        counts = self.arms.get(code)
        if counts is None:
            counts = self.arms[code] = ArmCounts()
        return counts

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp((self.block + 1) * BLOCK_SECONDS, UTC)


class Evidence:
    """The strata of one analysis (a canary or a shadow), kept equal to the stored ones by applying deltas."""

    def __init__(self, analysis_id: str) -> None:
        self.analysis_id = analysis_id
        self.strata: dict[tuple[float, int], Stratum] = {}
        self.version = 0
        """incremented by every change: the analyser publishes metrics only when it moved"""

    def apply(self, sid: StratumId, counts: Mapping[str, int]) -> None:
        _, step, block = parse_stratum_id(sid)
        stratum = self.strata.get((step, block))
        if stratum is None:
            stratum = self.strata[(step, block)] = Stratum(step, block)
        for key, value in counts.items():
            arm, _, name = key.partition(".")
            stratum.arm(arm).add(name, value)
        self.version += 1

    @classmethod
    def from_docs(cls, analysis_id: str, docs: Iterable[Mapping[str, Any]]) -> Evidence:
        """From the stored strata documents of this analysis."""
        evidence = cls(analysis_id)
        for doc in docs:
            evidence.apply(doc["_id"], flatten(doc.get("counts") or {}))
        return evidence

    @property
    def steps(self) -> list[float]:
        return sorted({step for step, _ in self.strata})

    def ordered(self) -> list[Stratum]:
        return [self.strata[key] for key in sorted(self.strata, key=lambda k: (k[1], k[0]))]

    def pooled(self, code: str, *, step: float | None = None) -> ArmCounts:
        """One arm's counters summed over every stratum (or over one traffic step)."""
        total = ArmCounts()
        for stratum in self.strata.values():
            if (step is None or stratum.step == step) and code in stratum.arms:
                total.merge(stratum.arms[code])
        return total


# --- the analyser's bookkeeping without a database ---------------------------------------------------
class MemoryLedger:
    """Prediction records and the strata of every analysis, in memory: the analyser's algorithm (fold a fact
    into its record, add ``contributions(new) - contributions(old)``) without MongoDB, for simulations and
    tests. ``horizon_end`` says when each analysis stops taking labels (default: never)."""

    def __init__(self, horizon_end: HorizonEnd | None = None) -> None:
        self.records: dict[str, Doc] = {}
        self.evidence: dict[str, Evidence] = {}
        self.unmatched_labels = 0
        self._horizon_end: HorizonEnd = horizon_end or (lambda _analysis: None)

    def served(self, prediction_id: str, payload: Mapping[str, Any], time: datetime) -> bool:
        return self._change(prediction_id, fold_served(self.records.get(prediction_id), payload, time))

    def feedback(self, prediction_id: str, label: int, time: datetime) -> bool:
        return self._change(prediction_id, fold_feedback(self.records.get(prediction_id), label, time))

    def _change(self, prediction_id: str, new: Doc | None) -> bool:
        if new is None:
            return False
        old = self.records.get(prediction_id)
        self.records[prediction_id] = new
        for sid, counts in delta(old, new, self._horizon_end).items():
            if sid == UNMATCHED:
                self.unmatched_labels += counts.get("labels", 0)
                continue
            analysis_id = parse_stratum_id(sid)[0]
            evidence = self.evidence.get(analysis_id)
            if evidence is None:
                evidence = self.evidence[analysis_id] = Evidence(analysis_id)
            evidence.apply(sid, counts)
        return True

    def of(self, analysis_id: str) -> Evidence:
        return self.evidence.get(analysis_id) or Evidence(analysis_id)
