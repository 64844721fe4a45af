"""Seeded simulation of canary traffic, and the sequential canary procedure run on it.

:class:`CanarySimulator` produces the event streams the canary analyser consumes: one
:class:`~ml.canary.aggregator.ServedEvent` per request (arm chosen by the real sticky router,
per-arm accuracy, error rate and log-normal latency) and, for a share of them, a
:class:`~ml.canary.aggregator.FeedbackEvent` carrying the true label after a log-normal delay.
Events come out in event-time order, window by window, so the traffic split can change between
windows as a real rollout would.

:func:`run_canary` runs the whole procedure in process: feed a window, close it, :func:`decide`
on the cumulative totals, follow the verdict (rollback stops; proceed moves to the next traffic
step; proceeding from the step before the last promotes), until a final verdict or ``max_windows``.
Tests, benchmarks and ``modelbus simulate canary --scenario better|worse|equal`` use it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import Field

from ml.base import Params
from ml.canary.aggregator import AggregatorConfig, ArmTotals, CanaryAggregator, FeedbackEvent, ServedEvent
from ml.canary.analysis import CanaryPolicy, Recommendation, Verdict, decide
from ml.canary.routing import Arm, bucket, canary_threshold
from ml.canary.stats import HIST_GROWTH, HIST_MIN_MS

ScenarioName = Literal["better", "worse", "equal"]
DEFAULT_START = datetime(2025, 11, 16, 14, 0, tzinfo=UTC)
Event = ServedEvent | FeedbackEvent


class CanarySimParams(Params):
    """What the two arms look like. Accuracies and rates are fractions; latencies are log-normal."""

    baseline_accuracy: float = Field(0.90, ge=0, le=1)
    canary_accuracy: float = Field(0.90, ge=0, le=1)
    positive_rate: float = Field(0.2, ge=0, le=1, description="share of true label 1")
    requests_per_s: float = Field(20.0, gt=0, description="Poisson arrival rate over both arms")
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


def scenario(name: ScenarioName, **overrides: float | str) -> CanarySimParams:
    """Parameters of a named scenario: the canary's accuracy is baseline (0.90) +5 pts, -5 pts or equal."""
    canary_accuracy = {"better": 0.95, "worse": 0.85, "equal": 0.90}[name]
    return CanarySimParams.model_validate({"baseline_accuracy": 0.90, "canary_accuracy": canary_accuracy, **overrides})


HIST_SIZE = 4096  # histogram buckets kept by the counts-level simulation (up to ~5e15 ms)


@dataclass(slots=True)
class _ArmCounts:
    model_id: str
    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    latency_sum: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(HIST_SIZE, np.int64))
    confusion: np.ndarray = field(default_factory=lambda: np.zeros(4, np.int64))  # tn fn fp tp

    def totals(self, arm: Arm) -> ArmTotals:
        nonzero = np.flatnonzero(self.hist)
        buckets = tuple(zip(nonzero.tolist(), self.hist[nonzero].tolist(), strict=True))
        tn, fn, fp, tp = self.confusion.tolist()
        return ArmTotals(
            arm, self.model_id, self.requests, self.errors, self.latency_count, self.latency_sum, buckets,
            tn, fn, fp, tp,
        )


class CanarySimulator:
    """Generates a canary's traffic window by window; ``canary_percentage`` may change between calls.

    :meth:`advance` returns the served and feedback events (arm chosen by the real sticky router);
    :meth:`advance_totals` draws the same kind of traffic but returns only both arms' cumulative
    :class:`ArmTotals` (arm drawn at random with the same probability, counts aggregated with numpy):
    tens of times faster, for Monte-Carlo studies of the verdict. Use one or the other per simulator.
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
        self._now = start.timestamp()
        self._issued = 0
        self._pushed = 0
        self._feedback: list[tuple[float, int, FeedbackEvent]] = []  # heap by time
        self._counts = (_ArmCounts(params.baseline_model_id), _ArmCounts(params.canary_model_id))
        self._in_flight = (np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64))  # label time, arm, cell

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    def advance(self, seconds: float) -> list[Event]:
        """Events with event time in ``[now, now + seconds)``, in time order; moves ``now`` on."""
        p, rng = self.params, self._rng
        begin, end = self._now, self._now + seconds
        n = int(rng.poisson(p.requests_per_s * seconds))
        times = np.sort(rng.uniform(begin, end, n))
        ids = [f"sim{self.seed}-{self._issued + i}" for i in range(n)]
        self._issued += n
        threshold = canary_threshold(self.canary_percentage)
        on_canary = np.fromiter((bucket(pid, salt=self.salt) < threshold for pid in ids), bool, count=n)
        truth = rng.random(n) < p.positive_rate
        correct = rng.random(n) < np.where(on_canary, p.canary_accuracy, p.baseline_accuracy)
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
                score=None if fail else score[i],
                label=None if fail else predicted[i],
                latency_ms=latency[i],
                error="simulated failure" if fail else None,
                time=datetime.fromtimestamp(t, UTC),
            )
            copies = 2 if duplicated[i] else 1
            out.extend([(t, 0, served)] * copies)
            if labelled[i]:
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

    def advance_totals(self, seconds: float) -> dict[Arm, ArmTotals]:
        """Both arms' cumulative totals at ``now + seconds`` (labels counted when they arrive); moves ``now`` on.

        Same model as :meth:`advance`, drawn per arm: Poisson arrivals split by the canary share,
        binomial errors and labels, log-normal latencies and label delays, and a confusion cell per label
        (P(tp) = positive_rate * accuracy, P(fn) = positive_rate * (1 - accuracy), ...).
        """
        p, rng = self.params, self._rng
        begin, end = self._now, self._now + seconds
        share = self.canary_percentage / 100.0
        times, arms, cells = [self._in_flight[0]], [self._in_flight[1]], [self._in_flight[2]]
        for arm_index, counts in enumerate(self._counts):
            accuracy, error_rate, median = (
                (p.canary_accuracy, p.canary_error_rate, p.canary_latency_median_ms)
                if arm_index
                else (p.baseline_accuracy, p.baseline_error_rate, p.baseline_latency_median_ms)
            )
            n = int(rng.poisson(p.requests_per_s * seconds * (share if arm_index else 1.0 - share)))
            errors = int(rng.binomial(n, error_rate))
            latency = median * np.exp(p.latency_sigma * rng.standard_normal(n - errors))
            index = np.log(np.maximum(latency, HIST_MIN_MS) / HIST_MIN_MS) // math.log(HIST_GROWTH) + 1
            counts.hist += np.bincount(np.minimum(index, HIST_SIZE - 1).astype(np.int64), minlength=HIST_SIZE)
            counts.requests += n
            counts.errors += errors
            counts.latency_count += n - errors
            counts.latency_sum += float(latency.sum())
            m = int(rng.binomial(n - errors, p.label_fraction))
            delay = p.label_delay_median_s * np.exp(p.label_delay_sigma * rng.standard_normal(m))
            times.append(rng.uniform(begin, end, m) + delay)
            arms.append(np.full(m, arm_index, np.int64))
            pos = p.positive_rate  # cells tn fn fp tp, drawn by inverting their cumulative probabilities
            edges = np.cumsum([(1 - pos) * accuracy, pos * (1 - accuracy), (1 - pos) * (1 - accuracy)])
            cells.append(np.searchsorted(edges, rng.random(m), side="right"))
        all_times, all_arms, all_cells = np.concatenate(times), np.concatenate(arms), np.concatenate(cells)
        due = all_times < end
        for arm_index, counts in enumerate(self._counts):
            counts.confusion += np.bincount(all_cells[due & (all_arms == arm_index)], minlength=4)
        self._in_flight = (all_times[~due], all_arms[~due], all_cells[~due])
        self._now = end
        return {arm: counts.totals(arm) for arm, counts in zip(("baseline", "canary"), self._counts, strict=True)}


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
    totals: dict[Arm, ArmTotals] = field(default_factory=dict)

    @property
    def labelled(self) -> tuple[int, int]:
        """Labelled predictions ``(baseline, canary)`` at the end."""
        return self.totals["baseline"].labelled, self.totals["canary"].labelled


def run_canary(
    params: CanarySimParams,
    *,
    seed: int,
    policy: CanaryPolicy | None = None,
    window_s: float = 60.0,
    max_windows: int = 60,
    follow_steps: bool = True,
    start_percentage: float | None = None,
    level: Literal["events", "counts"] = "events",
) -> CanaryRun:
    """Run the sequential canary procedure on simulated traffic, checking the verdict after every window.

    Stops at the first ``rollback``. On ``proceed`` it moves to the next traffic step when
    ``follow_steps`` (stopping as promoted when that step is the last), else it keeps monitoring.
    ``level="events"`` feeds simulated events through :class:`CanaryAggregator` (the real path);
    ``level="counts"`` draws the same traffic as counts (:meth:`CanarySimulator.advance_totals`).
    """
    policy = policy or CanaryPolicy()
    percentage = start_percentage if start_percentage is not None else policy.steps[0]
    sim = CanarySimulator(params, seed=seed, canary_percentage=percentage)
    aggregator = CanaryAggregator(AggregatorConfig(window_s=window_s))
    run = CanaryRun(outcome="hold", windows=0)
    for _ in range(max_windows):
        sim.canary_percentage = percentage
        if level == "counts":
            totals = sim.advance_totals(window_s)
        else:
            aggregator.add_many(sim.advance(window_s))
            aggregator.close_window(sim.now)
            totals = aggregator.totals()
        verdict = decide(totals["baseline"], totals["canary"], policy, current_percentage=percentage)
        run.windows += 1
        run.history.append((sim.now, percentage, verdict.recommendation))
        run.final, run.totals = verdict, totals
        if verdict.recommendation == "rollback":
            run.outcome = "rollback"
            break
        if verdict.recommendation == "proceed" and follow_steps:
            nxt = policy.next_step(percentage)
            if nxt is None or nxt == policy.steps[-1]:
                run.outcome = "proceed"
                break
            percentage = nxt
    return run
