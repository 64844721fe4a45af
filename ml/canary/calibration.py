"""Monte-Carlo calibration of the canary verdict: thousands of simulated canaries at once, looked at after
every window, with the very statistics :func:`ml.canary.analysis.decide` uses
(:func:`~ml.canary.analysis.stratified_difference`, :func:`~ml.canary.stats.cs_radius`,
:func:`~ml.canary.analysis.judge`), vectorised over canaries.

Per canary and window, per arm: Poisson requests (the rate may follow a cycle), binomial errors, labelled
successful predictions with binomial correct counts (accuracy may drift), and each label arriving a
log-normal delay later (split over the following windows). Strata are traffic step x ``BLOCK_SECONDS``
block of serving time, as in the analyser. The canary's share follows a fixed schedule, so a verdict never
changes the traffic and every canary is looked at after every window until the horizon (or its first
rollback). Latency is not simulated here: its rule is calibrated through the event-level simulation
(:func:`ml.canary.simulation.run_canary`).

``pooled=True`` replaces the strata by one pool (what modelbus did before, and what Simpson's paradox
breaks under drift); ``naive=True`` replaces the confidence sequence by a fixed-sample 95 % interval peeked at
after every window. Both exist to show what the real procedure protects against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from ml.base import Params
from ml.canary.analysis import CanaryPolicy, judge, stratified_difference
from ml.canary.evidence import BLOCK_SECONDS
from ml.canary.stats import Z95, cs_radius, wilson_interval


class CalibrationScenario(Params):
    """One simulated setting; accuracies and rates are fractions."""

    name: str
    canaries: int = Field(10_000, ge=1)
    windows: int = Field(60, ge=1)
    window_s: float = Field(60.0, gt=0)
    requests_per_s: float = Field(20.0, gt=0)
    rate_amplitude: float = Field(0.0, ge=0, lt=1, description="rate * (1 + a sin(2 pi t / period))")
    rate_period_s: float = Field(3600.0, gt=0)
    baseline_accuracy: float = Field(0.90, ge=0, le=1)
    canary_accuracy: float = Field(0.90, ge=0, le=1)
    shared_accuracy_drop: float = Field(0.0, ge=0, le=1)
    drop_at_window: int | None = Field(None, ge=0)
    baseline_error_rate: float = Field(0.002, ge=0, le=1)
    canary_error_rate: float = Field(0.002, ge=0, le=1)
    label_fraction: float = Field(0.3, ge=0, le=1)
    label_delay_median_s: float = Field(120.0, gt=0)
    label_delay_sigma: float = Field(0.8, ge=0)
    schedule: dict[int, float] = Field(default_factory=lambda: {0: 10.0}, description="window -> canary %")


@dataclass
class CalibrationResult:
    scenario: str
    canaries: int
    windows: int
    looks: int
    rollbacks: int
    proceeds: int
    first_rollback_window: list[int] = field(default_factory=list)
    first_proceed_window: list[int] = field(default_factory=list)
    canary_labels_at_rollback: list[int] = field(default_factory=list)
    canary_labels_at_proceed: list[int] = field(default_factory=list)
    total_labels_at_rollback: list[int] = field(default_factory=list)
    total_labels_at_proceed: list[int] = field(default_factory=list)

    @staticmethod
    def _rate(k: int, n: int) -> dict[str, Any]:
        low, high = wilson_interval(k, n) or (0.0, 1.0)
        return {"count": k, "rate": k / n, "ci95": [round(low, 4), round(high, 4)]}

    def summary(self) -> dict[str, Any]:
        def med(values: list[int]) -> float | None:
            return float(np.median(values)) if values else None

        def p90(values: list[int]) -> float | None:
            return float(np.percentile(values, 90)) if values else None

        return {
            "scenario": self.scenario,
            "canaries": self.canaries,
            "windows": self.windows,
            "looks": self.looks,
            "rollback": self._rate(self.rollbacks, self.canaries),
            "proceed": self._rate(self.proceeds, self.canaries),
            "canary_labels_at_rollback_median": med(self.canary_labels_at_rollback),
            "canary_labels_at_rollback_p90": p90(self.canary_labels_at_rollback),
            "total_labels_at_rollback_median": med(self.total_labels_at_rollback),
            "canary_labels_at_proceed_median": med(self.canary_labels_at_proceed),
            "canary_labels_at_proceed_p90": p90(self.canary_labels_at_proceed),
            "total_labels_at_proceed_median": med(self.total_labels_at_proceed),
        }


def _lag_probabilities(sc: CalibrationScenario, rng: np.random.Generator, draws: int = 200_000) -> np.ndarray:
    """P(a label arrives ``k`` windows after the window its prediction was served in), by simulation."""
    served = rng.uniform(0.0, sc.window_s, draws)
    delay = sc.label_delay_median_s * np.exp(sc.label_delay_sigma * rng.standard_normal(draws))
    lag = np.minimum(((served + delay) // sc.window_s).astype(np.int64), sc.windows)  # >= windows: never seen
    return np.bincount(lag, minlength=sc.windows + 1)[: sc.windows + 1] / draws


def simulate(
    sc: CalibrationScenario,
    policy: CanaryPolicy | None = None,
    *,
    seed: int = 0,
    pooled: bool = False,
    naive: bool = False,
    chunk: int = 2000,
) -> CalibrationResult:
    """Runs ``sc.canaries`` canaries (in chunks) and counts the canaries that were ever rolled back / ever
    proceeded (a rolled-back canary stops there), with the labels at that moment."""
    policy = policy or CanaryPolicy()
    result = CalibrationResult(sc.name, sc.canaries, sc.windows, 0, 0, 0)
    rng = np.random.default_rng(seed)
    lag_p = _lag_probabilities(sc, rng)
    share = np.empty(sc.windows)
    current = sc.schedule.get(0, 10.0)
    for w in range(sc.windows):
        current = sc.schedule.get(w, current)
        share[w] = current
    t = np.arange(sc.windows) * sc.window_s
    blocks = (t // BLOCK_SECONDS).astype(np.int64)
    keys = list(zip(share.tolist(), blocks.tolist(), strict=True))
    strata = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    sid = np.zeros(sc.windows, np.int64) if pooled else np.array([strata[k] for k in keys])
    n_strata = 1 if pooled else len(strata)
    rate = sc.requests_per_s * (1 + sc.rate_amplitude * np.sin(2 * np.pi * t / sc.rate_period_s)) * sc.window_s
    dropped = np.arange(sc.windows) >= (sc.drop_at_window if sc.drop_at_window is not None else sc.windows)
    drop = np.where(dropped, sc.shared_accuracy_drop, 0.0)
    accuracy = np.stack([np.clip(sc.baseline_accuracy - drop, 0, 1), np.clip(sc.canary_accuracy - drop, 0, 1)], -1)
    errors_p = np.array([sc.baseline_error_rate, sc.canary_error_rate])
    alpha = policy.alpha_per_metric
    for start in range(0, sc.canaries, chunk):
        size = min(chunk, sc.canaries - start)
        req = np.zeros((size, n_strata, 2))
        err = np.zeros((size, n_strata, 2))
        lab = np.zeros((size, n_strata, 2))
        cor = np.zeros((size, n_strata, 2))
        # labels in flight: arrival window -> stratum -> arm (labelled, correct)
        arriving_lab = np.zeros((size, sc.windows + 1, n_strata, 2))
        arriving_cor = np.zeros((size, sc.windows + 1, n_strata, 2))
        alive = np.ones(size, bool)
        proceeded = np.zeros(size, bool)
        for w in range(sc.windows):
            s = sid[w]
            arm_share = np.array([1.0 - share[w] / 100.0, share[w] / 100.0])
            n = rng.poisson(rate[w] * arm_share, size=(size, 2))
            e = rng.binomial(n, errors_p)
            labelled = rng.binomial(n - e, sc.label_fraction)
            correct = rng.binomial(labelled, accuracy[w])
            req[:, s] += n
            err[:, s] += e
            horizon = sc.windows + 1 - w
            p = lag_p[:horizon].copy()
            p[-1] += 1.0 - p.sum()  # everything later than the horizon lands in the last slot (never looked at)
            for arm in (0, 1):
                split_c = rng.multinomial(correct[:, arm], p)
                split_l = rng.multinomial(labelled[:, arm] - correct[:, arm], p) + split_c
                arriving_lab[:, w:, s, arm] += split_l
                arriving_cor[:, w:, s, arm] += split_c
            lab += arriving_lab[:, w]
            cor += arriving_cor[:, w]
            result.looks += int(alive.sum())
            # accuracy (arm 1 = canary, 0 = baseline)
            n1, n0 = lab[..., 1], lab[..., 0]
            both = (n1 > 0) & (n0 > 0)
            l1, l0 = (n1 * both).sum(-1), (n0 * both).sum(-1)
            d_acc, v_acc = stratified_difference(cor[..., 1], n1, cor[..., 0], n0)
            d_err, v_err = stratified_difference(err[..., 1], req[..., 1], err[..., 0], req[..., 0])
            if naive:
                r_acc, r_err = Z95 * np.sqrt(v_acc), Z95 * np.sqrt(v_err)
            else:
                r_acc = cs_radius(v_acc, alpha, policy.tau_accuracy)
                r_err = cs_radius(v_err, alpha, policy.tau_error_rate)
            harm_acc, ok_acc = judge(d_acc, r_acc, policy.accuracy_tolerance, higher_is_worse=False)
            harm_err, ok_err = judge(d_err, r_err, policy.error_rate_tolerance, higher_is_worse=True)
            reqs = req.sum(1)
            r1, r0 = reqs[:, 1], reqs[:, 0]
            harm = (harm_acc & (np.minimum(l1, l0) >= policy.harm_min_labelled)) | (
                harm_err & (np.minimum(r1, r0) >= policy.harm_min_requests)
            )
            proceed = (
                ok_acc & ok_err & ~harm
                & (np.minimum(l1, l0) >= policy.min_labelled)
                & (np.minimum(r1, r0) >= policy.min_requests)
            )
            new_rb = alive & harm
            for i in np.flatnonzero(new_rb).tolist():
                result.first_rollback_window.append(w)
                result.canary_labels_at_rollback.append(int(l1[i]))
                result.total_labels_at_rollback.append(int(l1[i] + l0[i]))
            new_pr = alive & proceed & ~proceeded
            for i in np.flatnonzero(new_pr).tolist():
                result.first_proceed_window.append(w)
                result.canary_labels_at_proceed.append(int(l1[i]))
                result.total_labels_at_proceed.append(int(l1[i] + l0[i]))
            proceeded |= new_pr
            alive &= ~harm
        result.rollbacks += int(size - alive.sum())
        result.proceeds += int(proceeded.sum())
    return result


def scenarios(canaries: int = 10_000) -> dict[str, CalibrationScenario]:
    """The calibration settings of ``docs/canary.md``: equal models (A/A) and a canary exactly at the
    accuracy tolerance, each stationary and drifting (the rate cycles by ±50 % per hour, both models lose
    8 points of accuracy half-way, and the canary goes 10 → 25 → 50 % on a fixed schedule)."""
    steps = {0: 10.0, 20: 25.0, 40: 50.0}
    drift = {"rate_amplitude": 0.5, "shared_accuracy_drop": 0.08, "drop_at_window": 30, "schedule": steps}
    base = {"canaries": canaries, "windows": 60, "baseline_accuracy": 0.93, "canary_accuracy": 0.93}
    return {
        "aa_stationary": CalibrationScenario(name="aa_stationary", **base, schedule=steps),
        "aa_drifting": CalibrationScenario(name="aa_drifting", **base, **drift),
        "at_tolerance_stationary": CalibrationScenario(
            name="at_tolerance_stationary", **(base | {"canary_accuracy": 0.92}), schedule=steps
        ),
        "at_tolerance_drifting": CalibrationScenario(
            name="at_tolerance_drifting", **(base | {"canary_accuracy": 0.92}), **drift
        ),
        "issue_drift_10_to_50": CalibrationScenario(
            name="issue_drift_10_to_50",
            **base,
            shared_accuracy_drop=0.08,
            drop_at_window=30,
            schedule={0: 10.0, 30: 50.0},
        ),
    }


def labels_needed(
    difference: float,
    share: float,
    *,
    policy: CanaryPolicy | None = None,
    baseline_accuracy: float = 0.90,
    canaries: int = 2000,
    windows: int = 240,
    requests_per_s: float = 20.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Power: how many labels a canary ``difference`` away from the baseline needs for its verdict
    (``rollback`` if worse, ``proceed`` if better) at a constant ``share`` % of traffic; median and p90
    over simulated canaries, and the share of canaries that got the verdict within ``windows``."""
    policy = policy or CanaryPolicy()
    sc = CalibrationScenario(
        name=f"{difference:+.2f}@{share:g}%",
        canaries=canaries,
        windows=windows,
        requests_per_s=requests_per_s,
        baseline_accuracy=baseline_accuracy,
        canary_accuracy=baseline_accuracy + difference,
        schedule={0: share},
    )
    res = simulate(sc, policy, seed=seed)
    worse = difference < 0
    found = res.rollbacks if worse else res.proceeds
    canary = res.canary_labels_at_rollback if worse else res.canary_labels_at_proceed
    total = res.total_labels_at_rollback if worse else res.total_labels_at_proceed
    windows_to = res.first_rollback_window if worse else res.first_proceed_window
    return {
        "difference_pts": round(difference * 100, 2),
        "canary_share_pct": share,
        "verdict": "rollback" if worse else "proceed",
        "canaries": canaries,
        "found_within_horizon": found / canaries,
        "horizon_minutes": windows * sc.window_s / 60.0,
        "canary_labels_median": float(np.median(canary)) if canary else None,
        "canary_labels_p90": float(np.percentile(canary, 90)) if canary else None,
        "total_labels_median": float(np.median(total)) if total else None,
        "minutes_median": float(np.median(windows_to)) + 1 if windows_to else None,
        "wrong_verdict": (res.proceeds if worse else res.rollbacks) / canaries,
    }
