"""Streaming per-arm aggregation of a canary's traffic and delayed ground truth.

One :class:`CanaryAggregator` per canary. It is fed two kinds of plain events, in any order:

* :class:`ServedEvent`: one per prediction served (``predict.served``), with the arm that served it;
* :class:`FeedbackEvent`: the true label of a prediction (``predict.feedback``), typically minutes
  later, sometimes *before* the served event reaches the aggregator (separate topics).

It joins them by ``prediction_id`` and keeps, per arm:

* **tumbling windows** of ``window_s`` seconds of event time, aligned on the Unix epoch (a 60 s
  window starts on a whole minute). A window's request figures come from the served events whose
  ``time`` falls in it; its labelled figures from the joins whose *join time*
  (``max(served time, feedback time)``, the moment the outcome became known) falls in it, so a
  window's accuracy describes the labels that came in during it (with minutes of label delay,
  the predictions *served* in a 60 s window are mostly unlabelled when it closes).
  :meth:`CanaryAggregator.close_window` closes every window ending at or before ``now - grace_s``
  and returns its :class:`WindowReport`; a closed window never changes again.
* **cumulative totals** since the canary started (:class:`ArmTotals`): every event counts here,
  including served events that arrive after their window closed (``late_served``), labels
  joined after their prediction's window closed (``late_labels``, the usual case) and labels
  whose join window itself had already closed (``out_of_order_labels``). The verdict
  (:func:`ml.canary.analysis.decide`) uses these.

Exactly-once semantics over an at-least-once stream: a second served event or a second feedback
with a ``prediction_id`` already seen is ignored (counted in ``duplicates_*``); a second feedback
with a different label keeps the first (``conflicting_feedback``).

Bounded memory (the figures are :class:`AggregatorConfig` fields):

* a served prediction is remembered for ``label_ttl_s`` of event time (default 1 h) or until more
  than ``max_tracked_predictions`` (default 1,000,000) are tracked, whichever comes first; its
  label can be joined and its duplicates detected only while it is remembered. Predictions
  forgotten unlabelled are counted in ``expired_unlabelled``.
* a feedback whose prediction has not been seen waits ``feedback_ttl_s`` (default 1 h) or until
  more than ``max_pending_feedback`` (default 200,000) wait; then it is dropped (``expired_feedback``).
* eviction runs in arrival order against the watermark (the largest event time seen);
* latencies: the open windows keep raw values (exact window percentiles); the cumulative totals
  keep a 1 %-resolution log histogram (a few hundred buckets in practice);
* the last ``max_windows_kept`` window reports (default 1,440 = one day of minutes).

Everything is deterministic: feeding the same events and ``close_window`` calls in the same order
rebuilds the same state and the same :meth:`CanaryAggregator.snapshot`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from operator import itemgetter
from typing import Any

import numpy as np
from pydantic import Field

from ml.base import Params
from ml.canary.routing import Arm
from ml.canary.stats import (
    HIST_GROWTH,
    HIST_MIN_MS,
    bucket_bounds,
    latency_bucket,
    wilson_interval,
)

ARMS: tuple[Arm, Arm] = ("baseline", "canary")
_ARM_INDEX: dict[str, int] = {"baseline": 0, "canary": 1}
_ERROR = -1  # "predicted label" of a prediction that failed
_UNKNOWN = -1  # true label not known yet
_NEVER = -(2**62)  # "no window closed yet": below every window index


def _epoch(when: datetime) -> float:
    if when.tzinfo is None:
        raise ValueError("event times must be timezone-aware (UTC)")
    return when.timestamp()


def _from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def iso(when: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


# --- events ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ServedEvent:
    """A prediction served by one arm. ``label`` is the *predicted* class (0/1), ``None`` on error."""

    prediction_id: str
    arm: Arm
    model_id: str
    score: float | None = None
    label: int | None
    latency_ms: float
    error: str | None = None
    time: datetime

    def __post_init__(self) -> None:
        if self.arm not in _ARM_INDEX:
            raise ValueError(f"arm must be 'baseline' or 'canary', got {self.arm!r}")
        if self.error is None and self.label not in (0, 1):
            raise ValueError(f"a served prediction without error needs label 0 or 1, got {self.label!r}")
        if not (math.isfinite(self.latency_ms) and self.latency_ms >= 0.0):
            raise ValueError(f"latency_ms must be finite and >= 0, got {self.latency_ms!r}")
        if self.time.tzinfo is None:
            raise ValueError("time must be timezone-aware (UTC)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServedEvent:
        """From a payload dict; ``time`` may be an ISO 8601 string ending in ``Z``."""
        return cls(
            prediction_id=str(data["prediction_id"]),
            arm=data["arm"],
            model_id=str(data["model_id"]),
            score=data.get("score"),
            label=data.get("label"),
            latency_ms=float(data["latency_ms"]),
            error=data.get("error"),
            time=_parse_time(data["time"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackEvent:
    """The ground truth (0/1) of an earlier prediction."""

    prediction_id: str
    label: int
    time: datetime

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise ValueError(f"feedback label must be 0 or 1, got {self.label!r}")
        if self.time.tzinfo is None:
            raise ValueError("time must be timezone-aware (UTC)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedbackEvent:
        return cls(prediction_id=str(data["prediction_id"]), label=int(data["label"]), time=_parse_time(data["time"]))


# --- results --------------------------------------------------------------------------------
def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None or precision + recall == 0.0:
        return None
    return 2 * precision * recall / (precision + recall)


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return list(ci) if ci is not None else None


@dataclass(frozen=True, slots=True)
class ArmTotals:
    """Cumulative figures of one arm since the canary started: what the verdict is computed from.

    ``tn, fn, fp, tp`` is the confusion matrix of the labelled, successful predictions (positive = 1).
    ``latency_buckets`` is the sorted ``(bucket, count)`` log histogram of successful requests'
    latencies (see :mod:`ml.canary.stats`).
    """

    arm: Arm
    model_id: str | None = None
    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_sum_ms: float = 0.0
    latency_buckets: tuple[tuple[int, int], ...] = ()
    tn: int = 0
    fn: int = 0
    fp: int = 0
    tp: int = 0
    _cumulative: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cumulative", tuple(accumulate(map(itemgetter(1), self.latency_buckets))))

    def _bucket_at_rank(self, rank: int) -> int:
        """Histogram bucket holding the ``rank``-th smallest latency (1-based)."""
        return self.latency_buckets[bisect_left(self._cumulative, rank)][0]

    @property
    def labelled(self) -> int:
        return self.tn + self.fn + self.fp + self.tp

    @property
    def correct(self) -> int:
        return self.tn + self.tp

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

    def latency_quantile_bounds(self, q: float, radius: float) -> tuple[float, float | None]:
        """Outward-rounded order-statistic bounds ``(lower, upper)`` of the ``q``-quantile.

        ``lower`` is the lower edge of the bucket holding rank ``floor(n (q - radius))`` (0 when that is
        below 1); ``upper`` the upper edge of the bucket holding rank ``ceil(n (q + radius))`` (``None``,
        unbounded, when that exceeds n). If ``radius`` is the half-width of a confidence sequence for
        a proportion, these bound the true quantile with the same guarantee (Howard & Ramdas 2022).
        """
        n = self.latency_count
        low_rank = math.floor(n * (q - radius))
        high_rank = math.ceil(n * (q + radius))
        lower = bucket_bounds(self._bucket_at_rank(low_rank))[0] if low_rank >= 1 else 0.0
        upper = bucket_bounds(self._bucket_at_rank(high_rank))[1] if high_rank <= n else None
        return lower, upper

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures (no histogram)."""
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
            "correct": self.correct,
            "accuracy": self.accuracy,
            "accuracy_ci": _interval(wilson_interval(self.correct, self.labelled)),
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "confusion": {"tn": self.tn, "fn": self.fn, "fp": self.fp, "tp": self.tp},
        }

    def to_dict(self) -> dict[str, Any]:
        """:meth:`summary` plus the latency histogram: :meth:`from_dict` rebuilds the totals exactly."""
        return {
            **self.summary(),
            "latency_count": self.latency_count,
            "latency_sum_ms": self.latency_sum_ms,
            "latency_histogram": {
                "min_ms": HIST_MIN_MS,
                "growth": HIST_GROWTH,
                "buckets": [list(pair) for pair in self.latency_buckets],
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmTotals:
        hist = data["latency_histogram"]
        if hist["min_ms"] != HIST_MIN_MS or hist["growth"] != HIST_GROWTH:
            raise ValueError("latency histogram layout differs from this version's")
        confusion = data["confusion"]
        return cls(
            arm=data["arm"],
            model_id=data.get("model_id"),
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            latency_count=int(data["latency_count"]),
            latency_sum_ms=float(data["latency_sum_ms"]),
            latency_buckets=tuple((int(i), int(c)) for i, c in hist["buckets"]),
            **{key: int(confusion[key]) for key in ("tn", "fn", "fp", "tp")},
        )

    @classmethod
    def from_counts(
        cls,
        arm: Arm,
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
        """Totals from plain counts and raw latencies (for tests, replays and projections)."""
        hist: dict[int, int] = {}
        count, total = 0, 0.0
        for value in latencies_ms:
            index = latency_bucket(value)
            hist[index] = hist.get(index, 0) + 1
            count += 1
            total += value
        return cls(arm, model_id, requests, errors, count, total, tuple(sorted(hist.items())), tn, fn, fp, tp)


@dataclass(frozen=True, slots=True)
class ArmWindowStats:
    """One arm's figures for one closed window, plus its cumulative totals at close time.

    Confidence intervals are fixed-sample 95 % Wilson intervals: descriptive, not for decisions.
    """

    arm: Arm
    model_id: str | None
    start: datetime
    end: datetime
    requests: int
    errors: int
    error_rate: float | None
    latency_mean_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    labelled: int
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    precision: float | None
    precision_ci: tuple[float, float] | None
    recall: float | None
    recall_ci: tuple[float, float] | None
    f1: float | None
    cumulative: ArmTotals

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "model_id": self.model_id,
            "start": iso(self.start),
            "end": iso(self.end),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_mean_ms": self.latency_mean_ms,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "labelled": self.labelled,
            "accuracy": self.accuracy,
            "accuracy_ci": _interval(self.accuracy_ci),
            "precision": self.precision,
            "precision_ci": _interval(self.precision_ci),
            "recall": self.recall,
            "recall_ci": _interval(self.recall_ci),
            "f1": self.f1,
            "cumulative": self.cumulative.summary(),
        }


@dataclass(frozen=True, slots=True)
class WindowReport:
    """Both arms' figures for one closed tumbling window ``[start, end)``."""

    start: datetime
    end: datetime
    baseline: ArmWindowStats
    canary: ArmWindowStats

    def arm(self, name: Arm) -> ArmWindowStats:
        return self.canary if name == "canary" else self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": iso(self.start),
            "end": iso(self.end),
            "baseline": self.baseline.to_dict(),
            "canary": self.canary.to_dict(),
        }


# --- configuration and accumulators ----------------------------------------------------------
class AggregatorConfig(Params):
    """Window length and the memory bounds of the label join (see the module docstring)."""

    window_s: float = Field(60.0, gt=0, description="tumbling window length, seconds of event time")
    grace_s: float = Field(0.0, ge=0, description="a window closes once now >= its end + grace_s")
    label_ttl_s: float = Field(3600.0, gt=0, description="how long a served prediction waits for its label")
    max_tracked_predictions: int = Field(1_000_000, gt=0, description="cap on remembered predictions")
    feedback_ttl_s: float = Field(3600.0, gt=0, description="how long a label waits for its prediction")
    max_pending_feedback: int = Field(200_000, gt=0, description="cap on labels waiting for their prediction")
    max_windows_kept: int = Field(1440, gt=0, description="closed window reports kept by windows()")


@dataclass(slots=True)
class _Acc:
    """Mutable per-arm counters; windows keep raw latencies, the cumulative totals a histogram."""

    raw: bool
    model_id: str | None = None
    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_sum: float = 0.0
    latencies: list[float] = field(default_factory=list)
    hist: dict[int, int] = field(default_factory=dict)
    confusion: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # index 2*predicted + truth: tn fn fp tp

    def served(self, model_id: str, predicted: int, latency_ms: float) -> None:
        self.model_id = model_id
        self.requests += 1
        if predicted == _ERROR:
            self.errors += 1
            return
        self.latency_count += 1
        self.latency_sum += latency_ms
        if self.raw:
            self.latencies.append(latency_ms)
        else:
            index = latency_bucket(latency_ms)
            self.hist[index] = self.hist.get(index, 0) + 1

    def totals(self, arm: Arm) -> ArmTotals:
        tn, fn, fp, tp = self.confusion
        return ArmTotals(
            arm, self.model_id, self.requests, self.errors, self.latency_count, self.latency_sum,
            tuple(sorted(self.hist.items())), tn, fn, fp, tp,
        )

    def window_stats(self, arm: Arm, start: datetime, end: datetime, cumulative: ArmTotals) -> ArmWindowStats:
        tn, fn, fp, tp = self.confusion
        labelled = tn + fn + fp + tp
        p50 = p95 = p99 = None
        if self.latencies:
            p50, p95, p99 = (float(v) for v in np.percentile(np.asarray(self.latencies), [50.0, 95.0, 99.0]))
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        return ArmWindowStats(
            arm=arm,
            model_id=self.model_id if self.model_id is not None else cumulative.model_id,
            start=start,
            end=end,
            requests=self.requests,
            errors=self.errors,
            error_rate=_ratio(self.errors, self.requests),
            latency_mean_ms=self.latency_sum / self.latency_count if self.latency_count else None,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
            labelled=labelled,
            accuracy=_ratio(tn + tp, labelled),
            accuracy_ci=wilson_interval(tn + tp, labelled),
            precision=precision,
            precision_ci=wilson_interval(tp, tp + fp),
            recall=recall,
            recall_ci=wilson_interval(tp, tp + fn),
            f1=_f1(precision, recall),
            cumulative=cumulative,
        )


# --- the aggregator --------------------------------------------------------------------------
class CanaryAggregator:
    """Joins served predictions with their delayed labels; per-arm windows and cumulative totals.

    Pure and single-threaded: the caller (the canary analyser consumer) feeds events with
    :meth:`add`, calls :meth:`close_window` on its clock, and runs
    :func:`ml.canary.analysis.decide` on :meth:`totals` after each close.
    """

    def __init__(self, config: AggregatorConfig | None = None, *, canary_id: str = "") -> None:
        self.config = config or AggregatorConfig()
        self.canary_id = canary_id
        self._window_s = self.config.window_s
        self._totals = (_Acc(raw=False), _Acc(raw=False))
        self._open: dict[int, tuple[_Acc, _Acc]] = {}
        self._closed: deque[WindowReport] = deque(maxlen=self.config.max_windows_kept)
        self._closed_before = _NEVER  # every window with a smaller index is closed
        self._watermark = -math.inf
        # prediction_id -> (arm index, predicted label or _ERROR, served time, true label or _UNKNOWN)
        self._predictions: dict[str, tuple[int, int, float, int]] = {}
        self._prediction_order: deque[tuple[float, str]] = deque()
        # prediction_id -> (true label, feedback time), for labels that came before their prediction
        self._orphans: dict[str, tuple[int, float]] = {}
        self._orphan_order: deque[tuple[float, str]] = deque()
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "served", "feedback", "duplicates_served", "duplicates_feedback", "conflicting_feedback",
                "feedback_for_errors", "joined", "late_served", "late_labels", "out_of_order_labels",
                "expired_unlabelled", "expired_feedback",
            ),
            0,
        )

    # feeding ---------------------------------------------------------------------------------
    def add(self, event: ServedEvent | FeedbackEvent) -> None:
        """Feed one event of either kind."""
        if isinstance(event, ServedEvent):
            self.add_served(event)
        else:
            self.add_feedback(event)

    def add_many(self, events: Iterable[ServedEvent | FeedbackEvent]) -> None:
        for event in events:
            self.add(event)

    def add_served(self, event: ServedEvent) -> None:
        pid = event.prediction_id
        counters = self.counters
        if pid in self._predictions:
            counters["duplicates_served"] += 1
            return
        counters["served"] += 1
        t = _epoch(event.time)
        arm = _ARM_INDEX[event.arm]
        predicted = _ERROR if event.error is not None or event.label is None else event.label
        model_id, latency = event.model_id, event.latency_ms
        self._totals[arm].served(model_id, predicted, latency)
        index = int(t // self._window_s)
        if index < self._closed_before:
            counters["late_served"] += 1
            self._window(self._closed_before)  # reported at the next close, with the totals that count it
        else:
            self._window(index)[arm].served(model_id, predicted, latency)
        truth = _UNKNOWN
        if self._orphans:
            orphan = self._orphans.pop(pid, None)
            if orphan is not None:
                truth = orphan[0]
                self._label(arm, predicted, truth, t, orphan[1])
        self._predictions[pid] = (arm, predicted, t, truth)
        self._prediction_order.append((t, pid))
        self._advance(t)

    def add_feedback(self, event: FeedbackEvent) -> None:
        pid = event.prediction_id
        t = _epoch(event.time)
        known = self._predictions.get(pid)
        if known is not None:
            arm, predicted, served_t, truth = known
            if truth != _UNKNOWN:
                self.counters["conflicting_feedback" if truth != event.label else "duplicates_feedback"] += 1
                return
            self.counters["feedback"] += 1
            self._predictions[pid] = (arm, predicted, served_t, event.label)
            self._label(arm, predicted, event.label, served_t, t)
        elif pid in self._orphans:
            first = self._orphans[pid][0]
            self.counters["conflicting_feedback" if first != event.label else "duplicates_feedback"] += 1
            return
        else:
            self.counters["feedback"] += 1
            self._orphans[pid] = (event.label, t)
            self._orphan_order.append((t, pid))
        self._advance(t)

    def _label(self, arm: int, predicted: int, truth: int, served_t: float, feedback_t: float) -> None:
        counters = self.counters
        if predicted == _ERROR:
            counters["feedback_for_errors"] += 1
            return
        counters["joined"] += 1
        cell = 2 * predicted + truth
        self._totals[arm].confusion[cell] += 1
        if int(served_t // self._window_s) < self._closed_before:
            counters["late_labels"] += 1
        index = int(max(served_t, feedback_t) // self._window_s)
        if index < self._closed_before:
            counters["out_of_order_labels"] += 1
            self._window(self._closed_before)
        else:
            self._window(index)[arm].confusion[cell] += 1

    def _window(self, index: int) -> tuple[_Acc, _Acc]:
        accs = self._open.get(index)
        if accs is None:
            accs = self._open[index] = (_Acc(raw=True), _Acc(raw=True))
        return accs

    def _advance(self, t: float) -> None:
        """Move the watermark and forget predictions and orphan labels past their TTL or cap."""
        if t > self._watermark:
            self._watermark = t
        cfg = self.config
        order, predictions = self._prediction_order, self._predictions
        cutoff = self._watermark - cfg.label_ttl_s
        while order and (order[0][0] < cutoff or len(predictions) > cfg.max_tracked_predictions):
            _, pid = order.popleft()
            entry = predictions.pop(pid, None)
            if entry is not None and entry[3] == _UNKNOWN:
                self.counters["expired_unlabelled"] += 1
        order, orphans = self._orphan_order, self._orphans
        cutoff = self._watermark - cfg.feedback_ttl_s
        while order and (order[0][0] < cutoff or len(orphans) > cfg.max_pending_feedback):
            _, pid = order.popleft()
            if orphans.pop(pid, None) is not None:
                self.counters["expired_feedback"] += 1

    # windows and results -----------------------------------------------------------------------
    def close_window(self, now: datetime) -> list[WindowReport]:
        """Close every window that ends at or before ``now - grace_s``; return their reports, oldest first.

        Windows that saw no event produce no report, except that an event landing in a closed window
        (``late_served`` / ``out_of_order_labels``) opens the first window still open, possibly empty:
        it still counts in the cumulative totals, and the next report carries them, so the totals a
        report shows never leave out an event that arrived before it.
        """
        boundary = int((_epoch(now) - self.config.grace_s) // self._window_s)
        if boundary <= self._closed_before:
            return []
        self._closed_before = boundary
        due = sorted(index for index in self._open if index < boundary)
        if not due:
            return []
        cumulative = self.totals()
        reports = []
        for index in due:
            accs = self._open.pop(index)
            start, end = _from_epoch(index * self._window_s), _from_epoch((index + 1) * self._window_s)
            stats = [acc.window_stats(arm, start, end, cumulative[arm]) for arm, acc in zip(ARMS, accs, strict=True)]
            reports.append(WindowReport(start, end, stats[0], stats[1]))
        self._closed.extend(reports)
        return reports

    def windows(self) -> list[WindowReport]:
        """The closed windows' reports kept (the last ``max_windows_kept``), oldest first."""
        return list(self._closed)

    def totals(self) -> dict[Arm, ArmTotals]:
        """Cumulative totals per arm, including late events: the input of ``decide``."""
        return {arm: acc.totals(arm) for arm, acc in zip(ARMS, self._totals, strict=True)}

    @property
    def watermark(self) -> datetime | None:
        """The largest event time seen."""
        return _from_epoch(self._watermark) if math.isfinite(self._watermark) else None

    def pending(self) -> dict[str, int]:
        """Sizes of the join state: predictions remembered (labelled or not) and labels waiting."""
        unlabelled = sum(1 for entry in self._predictions.values() if entry[3] == _UNKNOWN and entry[1] != _ERROR)
        return {
            "tracked_predictions": len(self._predictions),
            "unlabelled_predictions": unlabelled,
            "orphan_feedback": len(self._orphans),
            "open_windows": len(self._open),
        }

    def snapshot(self, *, last_windows: int = 10) -> dict[str, Any]:
        """JSON-friendly state: configuration, counters, totals (with histograms), the last windows."""
        recent: Sequence[WindowReport] = list(self._closed)[-last_windows:] if last_windows > 0 else []
        return {
            "canary_id": self.canary_id,
            "config": self.config.model_dump(),
            "watermark": iso(self.watermark) if self.watermark is not None else None,
            "closed_before": (
                iso(_from_epoch(self._closed_before * self._window_s)) if self._closed_before != _NEVER else None
            ),
            "counters": dict(self.counters),
            "pending": self.pending(),
            "totals": {arm: totals.to_dict() for arm, totals in self.totals().items()},
            "windows": [report.to_dict() for report in recent],
        }
