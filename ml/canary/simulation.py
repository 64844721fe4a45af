"""Seeded simulation of canary traffic, and the sequential canary procedure run on it.

:class:`CanarySimulator` produces what the canary analyser consumes: one served prediction per request
(arm chosen by the real sticky router, per-arm accuracy, error rate and log-normal latency) and, for a
share of them, the true label after a log-normal delay. Traffic may drift: the request rate can follow a
daily cycle (``rate_amplitude``) and both arms can lose accuracy together from some time on
(``shared_accuracy_drop`` after ``drop_after_s``), as real fraud traffic does.

* :meth:`CanarySimulator.advance` returns the events of the next seconds (event level): they go through
  :class:`ml.canary.evidence.MemoryLedger`, the analyser's own algorithm;
* :meth:`CanarySimulator.advance_counts` draws the same traffic directly as strata counts (tens of times
  faster), for tests that need many canaries.

:func:`run_canary` runs the whole procedure: feed a window, :func:`decide` on the evidence, follow the
verdict (rollback stops; proceed moves to the next traffic step; proceeding from the step before the last
promotes) or a fixed ``schedule`` of steps, until a final verdict or ``max_windows``. Tests, benchmarks and
``modelbus simulate canary`` use it. The Monte-Carlo calibration over thousands of canaries is
:mod:`ml.canary.calibration`.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ml.base import Params
from ml.canary.analysis import CanaryPolicy, Recommendation, Verdict, decide
from ml.canary.evidence import ARM_CODE, BLOCK_SECONDS, CELLS, Counts, Evidence, MemoryLedger, stratum_id
from ml.canary.routing import Arm, bucket, canary_threshold
from ml.canary.stats import HIST_GROWTH, HIST_MIN_MS

ScenarioName = Literal["better", "worse", "equal"]
DEFAULT_START = datetime(2025, 11, 16, 14, 0, tzinfo=UTC)
SIM_CANARY = "canary_sim"


class CanarySimParams(Params):
    """What the two arms look like. Accuracies and rates are fractions; latencies are log-normal."""

    baseline_accuracy: float = Field(0.90, ge=0, le=1)
    canary_accuracy: float = Field(0.90, ge=0, le=1)
    positive_rate: float = Field(0.2, ge=0, le=1, description="share of true label 1")
    requests_per_s: float = Field(20.0, gt=0, description="mean Poisson arrival rate over both arms")
    rate_amplitude: float = Field(0.0, ge=0, lt=1, description="daily cycle of the rate: rate * (1 + a sin)")
    rate_period_s: float = Field(86_400.0, gt=0, description="period of the rate cycle")
    shared_accuracy_drop: float = Field(0.0, ge=0, le=1, description="both arms lose this much accuracy ...")
    drop_after_s: float = Field(math.inf, ge=0, description="... from this many seconds after the start on")
    label_fraction: float = Field(0.3, ge=0, le=1, description="share of predictions that ever get a label")
    label_delay_median_s: float = Field(120.0, gt=0, description="median delay of a label after its prediction")
    label_delay_sigma: float = Field(0.8, ge=0, description="log-normal sigma of the label delay")
    baseline_latency_median_ms: float = Field(40.0, gt=0)
    canary_latency_median_ms: float = Field(40.0, gt=0)
    latency_sigma: float = Field(0.3, ge=0, description="log-normal sigma of latencies")
    baseline_error_rate: float = Field(0.002, ge=0, le=1)
    canary_error_rate: float = Field(0.002, ge=0, le=1)
    duplicate_rate: float = Field(0.0, ge=0, le=1, description="share of events delivered twice")
    baseline_model_id: str = "model_v1.2.0"
    canary_model_id: str = "model_v1.3.0"


def scenario(name: ScenarioName, **overrides: Any) -> CanarySimParams:
    """Parameters of a named scenario: the canary's accuracy is baseline (0.90) +5 pts, -5 pts or equal."""
    canary_accuracy = {"better": 0.95, "worse": 0.85, "equal": 0.90}[name]
    return CanarySimParams.model_validate({"baseline_accuracy": 0.90, "canary_accuracy": canary_accuracy, **overrides})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedEvent:
    """A prediction served by one arm (a ``predict.served`` payload). ``label`` is the *predicted* class."""

    prediction_id: str
    arm: Arm
    model_id: str
    percentage: float
    score: float | None
    label: int | None
    latency_ms: float
    error: str | None
    time: datetime
    canary_id: str = SIM_CANARY

    def payload(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id, "arm": self.arm, "model_id": self.model_id,
            "canary_id": self.canary_id, "percentage": self.percentage, "score": self.score, "label": self.label,
            "latency_ms": self.latency_ms, "error": self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackEvent:
    """The ground truth (0/1) of an earlier prediction (a ``predict.feedback`` payload)."""

    prediction_id: str
    label: int
    time: datetime


Event = ServedEvent | FeedbackEvent


def feed(ledger: MemoryLedger, events: list[Event]) -> None:
    """Events into the ledger, as the analyser folds them."""
    for event in events:
        if isinstance(event, ServedEvent):
            ledger.served(event.prediction_id, event.payload(), event.time)
        else:
            ledger.feedback(event.prediction_id, event.label, event.time)


HIST_SIZE = 4096  # histogram buckets of the counts-level simulation (up to ~5e15 ms)


class CanarySimulator:
    """Generates a canary's traffic window by window; ``canary_percentage`` may change between calls.

    Use :meth:`advance` (events) or :meth:`advance_counts` (strata counts) per simulator, not both.
    """

    def __init__(
        self,
        params: CanarySimParams,
        *,
        seed: int,
        start: datetime = DEFAULT_START,
        canary_percentage: float = 10.0,
        salt: str = "",
    ) -> None:
        self.params = params
        self.canary_percentage = canary_percentage
        self.seed = seed
        self.salt = salt
        self._rng = np.random.default_rng(seed)
        self._start = start.timestamp()
        self._now = self._start
        self._issued = 0
        self._pushed = 0
        self._feedback: list[tuple[float, int, FeedbackEvent]] = []  # heap by time
        # counts level: labels in flight (arrival time, arm code index, confusion cell, stratum id)
        self._in_flight: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]] = []

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    def _rate(self, t: float) -> float:
        p = self.params
        return p.requests_per_s * (1.0 + p.rate_amplitude * math.sin(2 * math.pi * (t - self._start) / p.rate_period_s))

    def _accuracies(self, t: float) -> tuple[float, float]:
        p = self.params
        drop = p.shared_accuracy_drop if t - self._start >= p.drop_after_s else 0.0
        return max(p.baseline_accuracy - drop, 0.0), max(p.canary_accuracy - drop, 0.0)

    def advance(self, seconds: float) -> list[Event]:
        """Events with event time in ``[now, now + seconds)``, in time order; moves ``now`` on."""
        p, rng = self.params, self._rng
        begin, end = self._now, self._now + seconds
        n = int(rng.poisson(self._rate(begin) * seconds))
        times = np.sort(rng.uniform(begin, end, n))
        ids = [f"sim{self.seed}-{self._issued + i}" for i in range(n)]
        self._issued += n
        threshold = canary_threshold(self.canary_percentage)
        on_canary = np.fromiter((bucket(pid, salt=self.salt) < threshold for pid in ids), bool, count=n)
        truth = rng.random(n) < p.positive_rate
        acc_b, acc_c = self._accuracies(begin)
        correct = rng.random(n) < np.where(on_canary, acc_c, acc_b)
        predicted_arr = np.where(correct, truth, ~truth)
        median = np.where(on_canary, p.canary_latency_median_ms, p.baseline_latency_median_ms)
        failed = (rng.random(n) < np.where(on_canary, p.canary_error_rate, p.baseline_error_rate)).tolist()
        latency = (median * np.exp(p.latency_sigma * rng.standard_normal(n))).tolist()
        score = np.where(predicted_arr, 0.5 + 0.5 * rng.random(n), 0.5 * rng.random(n)).tolist()
        labelled = (rng.random(n) < p.label_fraction).tolist()
        delay = p.label_delay_median_s * np.exp(p.label_delay_sigma * rng.standard_normal(n))
        label_time = (times + delay).tolist()
        duplicated = (rng.random(n) < p.duplicate_rate).tolist()
        canary, predicted = on_canary.tolist(), predicted_arr.astype(int).tolist()
        truth_list = truth.astype(int).tolist()

        out: list[tuple[float, int, Event]] = []
        for i, t in enumerate(times.tolist()):
            fail = failed[i]
            served = ServedEvent(
                prediction_id=ids[i],
                arm="canary" if canary[i] else "baseline",
                model_id=p.canary_model_id if canary[i] else p.baseline_model_id,
                percentage=self.canary_percentage,
                score=None if fail else score[i],
                label=None if fail else predicted[i],
                latency_ms=latency[i],
                error="simulated failure" if fail else None,
                time=datetime.fromtimestamp(t, UTC),
            )
            copies = 2 if duplicated[i] else 1
            out.extend([(t, 0, served)] * copies)
            if labelled[i] and not fail:
                feedback = FeedbackEvent(
                    prediction_id=ids[i], label=truth_list[i], time=datetime.fromtimestamp(label_time[i], UTC)
                )
                for _ in range(copies):
                    self._pushed += 1
                    heapq.heappush(self._feedback, (label_time[i], self._pushed, feedback))
        while self._feedback and self._feedback[0][0] < end:
            t_label, _, feedback = heapq.heappop(self._feedback)
            out.append((t_label, 1, feedback))
        out.sort(key=lambda item: (item[0], item[1]))
        self._now = end
        return [event for _, _, event in out]

    def advance_counts(self, seconds: float, *, analysis_id: str = SIM_CANARY) -> dict[str, Counts]:
        """The strata counts added during ``[now, now + seconds)`` (labels counted when they arrive, in the
        stratum of their prediction); moves ``now`` on. Same model as :meth:`advance`, drawn per arm."""
        p, rng = self.params, self._rng
        begin, end = self._now, self._now + seconds
        share = self.canary_percentage / 100.0
        acc_b, acc_c = self._accuracies(begin)
        out: dict[str, Counts] = {}
        for code, arm_share, accuracy, error_rate, median in (
            ("b", 1.0 - share, acc_b, p.baseline_error_rate, p.baseline_latency_median_ms),
            ("c", share, acc_c, p.canary_error_rate, p.canary_latency_median_ms),
        ):
            n = int(rng.poisson(self._rate(begin) * seconds * arm_share))
            if n == 0:
                continue
            times = rng.uniform(begin, end, n)
            blocks = (times // BLOCK_SECONDS).astype(np.int64)
            failed = rng.random(n) < error_rate
            latency = median * np.exp(p.latency_sigma * rng.standard_normal(n))
            index = np.log(np.maximum(latency, HIST_MIN_MS) / HIST_MIN_MS) // math.log(HIST_GROWTH) + 1
            index = np.minimum(index, HIST_SIZE - 1).astype(np.int64)
            labelled = ~failed & (rng.random(n) < p.label_fraction)
            pos = p.positive_rate  # cells tn fn fp tp, drawn by inverting their cumulative probabilities
            edges = np.cumsum([(1 - pos) * accuracy, pos * (1 - accuracy), (1 - pos) * (1 - accuracy)])
            cells = np.searchsorted(edges, rng.random(n), side="right")
            delay = p.label_delay_median_s * np.exp(p.label_delay_sigma * rng.standard_normal(n))
            for block in np.unique(blocks).tolist():
                mask = blocks == block
                counts = out.setdefault(stratum_id(analysis_id, self.canary_percentage, block), {})
                ok = mask & ~failed
                counts[f"{code}.requests"] = counts.get(f"{code}.requests", 0) + int(mask.sum())
                counts[f"{code}.errors"] = counts.get(f"{code}.errors", 0) + int((mask & failed).sum())
                counts[f"{code}.ok"] = counts.get(f"{code}.ok", 0) + int(ok.sum())
                counts[f"{code}.lat_n"] = counts.get(f"{code}.lat_n", 0) + int(ok.sum())
                counts[f"{code}.lat_us"] = counts.get(f"{code}.lat_us", 0) + int(np.round(latency[ok] * 1000).sum())
                buckets, hits = np.unique(index[ok], return_counts=True)
                for b, h in zip(buckets.tolist(), hits.tolist(), strict=True):
                    counts[f"{code}.h.{b}"] = counts.get(f"{code}.h.{b}", 0) + h
            sids = [stratum_id(analysis_id, self.canary_percentage, b) for b in blocks[labelled].tolist()]
            self._in_flight.append(
                (times[labelled] + delay[labelled], np.full(len(sids), ARM_CODE_INDEX[code]), cells[labelled], sids)
            )
        kept = []
        for arrival, arms, cells, sids in self._in_flight:
            due = arrival < end
            for i in np.flatnonzero(due).tolist():
                key = f"{CODES[int(arms[i])]}.{CELLS[int(cells[i])]}"
                counts = out.setdefault(sids[i], {})
                counts[key] = counts.get(key, 0) + 1
            if not due.all():
                keep = ~due
                kept.append((arrival[keep], arms[keep], cells[keep], [s for s, k in zip(sids, keep, strict=True) if k]))
        self._in_flight = kept
        self._now = end
        return out


CODES = ("b", "c")
ARM_CODE_INDEX = {code: i for i, code in enumerate(CODES)}
assert set(CODES) <= set(ARM_CODE.values())


@dataclass
class CanaryRun:
    """The course of one simulated canary."""

    outcome: Recommendation
    """``rollback``, ``proceed`` (promoted to production) or ``hold`` (no final verdict within max_windows)."""
    windows: int
    """Windows analysed (the verdict was checked after each)."""
    history: list[tuple[datetime, float, Recommendation]] = field(default_factory=list)
    """``(window end, canary percentage, recommendation)`` after every window."""
    final: Verdict | None = None
    evidence: Evidence | None = None

    @property
    def labelled(self) -> tuple[int, int]:
        """Labelled predictions ``(baseline, canary)`` at the end."""
        if self.evidence is None:
            return 0, 0
        return self.evidence.pooled("b").labelled, self.evidence.pooled("c").labelled


def run_canary(
    params: CanarySimParams,
    *,
    seed: int,
    policy: CanaryPolicy | None = None,
    window_s: float = 60.0,
    max_windows: int = 60,
    follow_steps: bool = True,
    start_percentage: float | None = None,
    schedule: dict[int, float] | None = None,
    level: Literal["events", "counts"] = "events",
) -> CanaryRun:
    """Run the sequential canary procedure on simulated traffic, checking the verdict after every window.

    Stops at the first ``rollback``. On ``proceed`` it moves to the next traffic step when ``follow_steps``
    (stopping as promoted when that step is the last), else it keeps monitoring. ``schedule`` (window index
    -> percentage) changes the traffic share at fixed windows instead, whatever the verdict. ``level="events"``
    feeds simulated events through :class:`MemoryLedger` (the analyser's algorithm); ``"counts"`` draws strata
    counts directly.
    """
    policy = policy or CanaryPolicy()
    percentage = start_percentage if start_percentage is not None else policy.steps[0]
    sim = CanarySimulator(params, seed=seed, canary_percentage=percentage)
    ledger = MemoryLedger()
    evidence = Evidence(SIM_CANARY)
    run = CanaryRun(outcome="hold", windows=0)
    for window in range(max_windows):
        if schedule and window in schedule:
            percentage = schedule[window]
        sim.canary_percentage = percentage
        if level == "counts":
            for sid, counts in sim.advance_counts(window_s).items():
                evidence.apply(sid, counts)
        else:
            feed(ledger, sim.advance(window_s))
            evidence = ledger.of(SIM_CANARY)
        verdict = decide(evidence, policy, current_percentage=percentage, now=sim.now)
        run.windows += 1
        run.history.append((sim.now, percentage, verdict.recommendation))
        run.final, run.evidence = verdict, evidence
        if verdict.recommendation == "rollback":
            run.outcome = "rollback"
            break
        if verdict.recommendation == "proceed" and follow_steps and not schedule:
            nxt = policy.next_step(percentage)
            if nxt is None or nxt == policy.steps[-1]:
                run.outcome = "proceed"
                break
            percentage = nxt
    return run
