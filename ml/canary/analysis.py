"""Canary (and shadow) verdicts that stay valid when re-checked after every window, under drift.

Method
======
**Strata.** The evidence (:class:`ml.canary.evidence.Evidence`) is kept per stratum: traffic step ×
10-minute block of serving time. Within a stratum both arms saw the same traffic at the same time with a
fixed split, so comparing them there is fair whatever happens to the traffic or to accuracy over time.
The per-stratum differences are combined with Cochran–Mantel–Haenszel weights
``w_s = n1_s n0_s / (n1_s + n0_s)`` (they depend on the counts only, never on the outcomes, so a small
stratum that happens to look good cannot pull the weights):

    ``d = sum_s w_s (p1_s - p0_s) / W``,   ``V = sum_s w_s² (s1_s (1 - s1_s) / n1_s + s0_s (1 - s0_s) / n0_s) / W²``

with Laplace-smoothed ``s = (x + 1) / (n + 2)`` for the variance. With one stratum this is exactly the
pooled difference and its variance. Pooling across steps instead would weight the canary's data towards
later times (its share grows) and turn any shared drift into a spurious difference (Simpson's paradox).

**Confidence sequences.** Every comparison is a confidence sequence (CS): an interval that contains the
true value at *all* looks simultaneously with probability >= 1 - alpha, so the analyser may look after
every window, forever. The boundary is a discrete mixture of normal-mixture (mSPRT) boundaries over
several scales ``tau`` (:func:`ml.canary.stats.cs_radius`): one scale is tight at one sample size only;
the mixture is within ~15 % of the best single scale from a few dozen labels to hundreds of thousands,
so a plainly harmful canary is caught after a few dozen labels and a 1-point difference after thousands.
It is asymptotic (valid once the CLT applies: hence the small floors ``harm_min_labelled`` /
``harm_min_requests``, 30 per arm by default, calibrated by simulation in ``docs/canary.md``).

``alpha`` is split over the three guarded metrics (Bonferroni), ``alpha_m = alpha / 3``, so the
probability that a canary *within* tolerance on every metric is ever rolled back is <= alpha;
a reported "98.3% CS" is the per-metric level ``1 - alpha_m`` for the default alpha = 0.05.

1. **Accuracy** (labelled successful predictions, strata old enough for ``label_maturity_seconds``):
   the stratified difference ``canary - baseline`` and its CS, ``tau in tau_accuracy``.
2. **Error rate** (all requests): the same on errors / requests, ``tau in tau_error_rate``.
3. **Latency quantile** (p95 of successful requests; robust, distribution-free). Each arm's latency
   distribution is *standardised* over the strata with the same weights for both arms (each stratum's
   histogram weighted by its Mantel-Haenszel weight), so both describe the same traffic mix. Each arm's
   quantile gets an order-statistic CS: the true p95 lies between the quantiles at levels ``0.95 ∓ r``,
   ``r`` the CS radius of a weighted Bernoulli(0.95) mean, variance ``0.95 · 0.05 · sum_s w_s² / n_s``
   (Howard & Ramdas 2022), at ``alpha_m / 2`` per arm. With one stratum this is the plain order-statistic
   rule. The tolerance is ``limit(b) = max(b * (1 + latency_tolerance_rel), b + latency_tolerance_ms)``.

Decision rule (``decide``)
==========================
* ``rollback`` as soon as any metric is worse beyond its tolerance with confidence, once both arms have
  the small floor (``harm_min_labelled`` labels for accuracy, ``harm_min_requests`` requests otherwise):
  accuracy ``CS_high < -accuracy_tolerance``; error rate ``CS_low > error_rate_tolerance``; latency
  ``canary_p95_low > limit(baseline_p95_high)``.
* ``proceed`` when both arms have ``min_requests`` requests and ``min_labelled`` labels (the minimum
  exposure) and every metric is non-inferior with confidence: accuracy ``CS_low > -accuracy_tolerance``,
  error rate ``CS_high <= error_rate_tolerance``, latency ``canary_p95_high <= limit(baseline_p95_low)``.
* ``hold`` otherwise, with what is missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml.base import Params
from ml.canary.evidence import ARM_NAME, ArmTotals, Evidence, Stratum
from ml.canary.stats import bucket_bounds, cs_radius

Recommendation = Literal["proceed", "hold", "rollback"]
Status = Literal["harm", "ok", "inconclusive", "insufficient"]
DEFAULT_STEPS: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0)
GUARDED_METRICS = 3  # accuracy, error rate, latency quantile: alpha is split over them
METHOD = (
    "stratified by traffic step x 10-minute block (Cochran-Mantel-Haenszel weights); anytime-valid confidence "
    "sequence (mixture of normal-mixture boundaries), valid under unlimited looks"
)


def next_step(current: float, steps: tuple[float, ...] = DEFAULT_STEPS) -> float | None:
    """The first step above ``current`` (``None`` when already at or past the last step)."""
    return next((step for step in steps if step > current), None)


class CanaryPolicy(Params):
    """Parameters of the canary verdict. Tolerances are absolute (0.01 = 1 percentage point)."""

    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise error over all looks and metrics")
    accuracy_tolerance: float = Field(0.01, ge=0, lt=1, description="non-inferiority margin on accuracy")
    error_rate_tolerance: float = Field(0.005, ge=0, lt=1, description="allowed rise of the error rate")
    latency_quantile: float = Field(0.95, gt=0, lt=1, description="latency quantile compared (p95)")
    latency_tolerance_rel: float = Field(0.10, ge=0, description="allowed relative rise of the quantile")
    latency_tolerance_ms: float = Field(5.0, ge=0, description="allowed absolute rise of the quantile, ms")
    min_requests: int = Field(500, ge=1, description="requests per arm before proceed (the minimum exposure)")
    min_labelled: int = Field(300, ge=1, description="labelled predictions per arm before proceed")
    harm_min_labelled: int = Field(
        30, ge=10, description="labelled predictions per arm before accuracy can show harm (the CLT floor)"
    )
    harm_min_requests: int = Field(
        30, ge=10, description="requests per arm before error rate or latency can show harm (the CLT floor)"
    )
    label_horizon_days: float = Field(
        30.0, gt=0, le=3650, description="labels are joined until this long after the analysis ends"
    )
    label_maturity_seconds: float = Field(
        0.0, ge=0, description="accuracy counts only predictions served at least this long ago (labels final later)"
    )
    tau_accuracy: tuple[float, ...] = Field(
        (0.01, 0.03, 0.1, 0.3), min_length=1, description="mixture scales for the accuracy difference"
    )
    tau_error_rate: tuple[float, ...] = Field(
        (0.003, 0.01, 0.05, 0.3), min_length=1, description="mixture scales for the error-rate difference"
    )
    tau_quantile: tuple[float, ...] = Field(
        (0.005, 0.02, 0.08), min_length=1, description="mixture scales for the latency quantile level"
    )
    steps: tuple[float, ...] = Field(DEFAULT_STEPS, description="canary traffic percentages, ascending")

    @field_validator("steps")
    @classmethod
    def _ascending(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
            raise ValueError("steps must be strictly ascending percentages in (0, 100]")
        return steps

    @field_validator("tau_accuracy", "tau_error_rate", "tau_quantile")
    @classmethod
    def _positive(cls, taus: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < t <= 1 for t in taus):
            raise ValueError("mixture scales must be in (0, 1]")
        return taus

    @property
    def alpha_per_metric(self) -> float:
        return self.alpha / GUARDED_METRICS

    @property
    def label_horizon(self) -> timedelta:
        return timedelta(days=self.label_horizon_days)

    def next_step(self, current: float) -> float | None:
        """The next traffic percentage after ``current`` (``None`` at the last step)."""
        return next_step(current, self.steps)

    def latency_limit(self, baseline_ms: float) -> float:
        """The slowest canary quantile tolerated against a baseline quantile of ``baseline_ms``."""
        return max(baseline_ms * (1.0 + self.latency_tolerance_rel), baseline_ms + self.latency_tolerance_ms)


class Verdict(BaseModel):
    """A recommendation with readable reasons (English, Korean) and every number behind it."""

    model_config = ConfigDict(frozen=True)

    recommendation: Recommendation
    reason_en: str
    reason_ko: str
    numbers: dict[str, Any]


# --- the statistics (vectorised: decide uses one canary, the calibration thousands) ----------------------
def stratified_difference(
    x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(d, V)``: the Mantel-Haenszel difference of proportions ``x1/n1 - x0/n0`` over the last axis (the
    strata) and its variance. Strata where an arm has no observation are left out; where none is left,
    ``d = 0`` and ``V = inf``."""
    x1, n1, x0, n0 = (np.asarray(a, dtype=np.float64) for a in (x1, n1, x0, n0))
    use = (n1 > 0) & (n0 > 0)
    m1, m0 = np.where(use, n1, 1.0), np.where(use, n0, 1.0)
    w = np.where(use, m1 * m0 / (m1 + m0), 0.0)
    s1, s0 = (x1 + 1) / (m1 + 2), (x0 + 1) / (m0 + 2)
    total = w.sum(axis=-1)
    safe = np.where(total > 0, total, 1.0)
    d = (w * (x1 / m1 - x0 / m0)).sum(axis=-1) / safe
    variance = (w * w * (s1 * (1 - s1) / m1 + s0 * (1 - s0) / m0)).sum(axis=-1) / safe**2
    return np.where(total > 0, d, 0.0), np.where(total > 0, variance, np.inf)


def judge(
    d: np.ndarray, radius: np.ndarray, tolerance: float, *, higher_is_worse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(harm, ok)`` of a CS ``d ± radius`` on ``canary - baseline`` against a non-inferiority margin."""
    if higher_is_worse:  # error rate: worse when higher
        return d - radius > tolerance, d + radius <= tolerance
    return d + radius < -tolerance, d - radius > -tolerance


# --- formatting -------------------------------------------------------------------------------
def _pts(value: float, digits: int = 1) -> str:
    """A difference of proportions in percentage points, signed: ``-4.6``."""
    return f"{value * 100:+.{digits}f}"


def _ms(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:.1f}"


def _cs(low: float, high: float, digits: int = 1) -> str:
    return f"[{_pts(low, digits)}, {_pts(high, digits)}]"


def _level(alpha: float) -> str:
    return f"{(1 - alpha) * 100:.1f}%"


def status_metrics(baseline: ArmTotals, canary: ArmTotals) -> dict[str, dict[str, float | None]]:
    """The status endpoint's ``metrics`` object: ``new_model`` (canary) / ``old_model`` (baseline)."""

    def one(totals: ArmTotals) -> dict[str, float | None]:
        accuracy, mean = totals.accuracy, totals.mean_latency_ms
        return {
            "accuracy": round(accuracy, 4) if accuracy is not None else None,
            "avg_response_time_ms": round(mean, 1) if mean is not None else None,
        }

    return {"new_model": one(canary), "old_model": one(baseline)}


# --- the three checks -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class _Check:
    metric: str
    status: Status
    en: str
    ko: str
    numbers: dict[str, Any]


def _arrays(strata: list[Stratum], challenger: str, field_x: str, field_n: str) -> list[np.ndarray]:
    def col(code: str, name: str) -> np.ndarray:
        return np.array([getattr(s.arms[code], name) if code in s.arms else 0 for s in strata], dtype=np.float64)

    return [col(challenger, field_x), col(challenger, field_n), col("b", field_x), col("b", field_n)]


def _accuracy(strata: list[Stratum], challenger: str, policy: CanaryPolicy) -> _Check:
    x1, n1, x0, n0 = _arrays(strata, challenger, "correct", "labelled")
    paired = (n1 > 0) & (n0 > 0)
    nc, nb = int(n1[paired].sum()), int(n0[paired].sum())
    tol = policy.accuracy_tolerance
    numbers: dict[str, Any] = {
        "labelled_baseline": nb, "labelled_canary": nc, "tolerance": tol, "min_labelled": policy.min_labelled,
        "harm_min_labelled": policy.harm_min_labelled, "strata": int(paired.sum()),
    }
    if min(nb, nc) < policy.harm_min_labelled:
        return _Check(
            metric="accuracy", status="insufficient", numbers=numbers,
            en=f"Accuracy: only {nc:,} canary / {nb:,} baseline labelled predictions so far "
            f"(at least {policy.harm_min_labelled:,} per arm needed to judge).",
            ko=f"정확도: 라벨이 아직 부족함 (새 모델 {nc:,}건 / 기존 {nb:,}건, "
            f"모델별 최소 {policy.harm_min_labelled:,}건 필요).",
        )
    alpha = policy.alpha_per_metric
    d_arr, v_arr = stratified_difference(x1, n1, x0, n0)
    diff, variance = float(d_arr), float(v_arr)
    radius = float(cs_radius(variance, alpha, policy.tau_accuracy))
    low, high = diff - radius, diff + radius
    harm, ok = (bool(v) for v in judge(d_arr, np.asarray(radius), tol, higher_is_worse=False))
    ac, ab = float(x1[paired].sum()) / nc, float(x0[paired].sum()) / nb
    numbers |= {"baseline": ab, "canary": ac, "diff": diff, "cs_low": low, "cs_high": high, "level": 1 - alpha}
    lvl, tol_pts = _level(alpha), f"{tol * 100:.1f}"
    figures = f"{ac:.3f} vs baseline {ab:.3f} ({_pts(diff)} pts, {lvl} CS {_cs(low, high)}) " \
        f"on {nc:,} / {nb:,} labelled predictions"
    figures_ko = f"{ac:.3f} vs {ab:.3f}, {lvl} 신뢰구간 {_cs(low, high)}%p, 라벨 {nc:,} / {nb:,}건"
    if harm:
        return _Check(
            metric="accuracy", status="harm", numbers=numbers,
            en=f"Canary accuracy {figures}: worse than the {tol_pts}-pt tolerance.",
            ko=f"새 모델의 정확도가 기존보다 {abs(diff) * 100:.1f}%p 낮음 ({figures_ko}): 허용 오차 {tol_pts}%p 초과.",
        )
    if min(nb, nc) < policy.min_labelled:
        return _Check(
            metric="accuracy", status="insufficient", numbers=numbers,
            en=f"Canary accuracy {figures}: no harm shown; at least {policy.min_labelled:,} labelled predictions "
            "per arm are needed before proceeding.",
            ko=f"정확도 차이 {_pts(diff)}%p ({figures_ko}): 저하는 확인되지 않음, 다음 단계 전에 모델별 "
            f"최소 {policy.min_labelled:,}건의 라벨 필요.",
        )
    if ok:
        return _Check(
            metric="accuracy", status="ok", numbers=numbers,
            en=f"Canary accuracy {figures}: not worse than the {tol_pts}-pt tolerance.",
            ko=f"정확도 차이 {_pts(diff)}%p ({figures_ko}): 허용 오차 {tol_pts}%p 이내.",
        )
    return _Check(
        metric="accuracy", status="inconclusive", numbers=numbers,
        en=f"Canary accuracy {figures}: a drop beyond the {tol_pts}-pt tolerance is neither ruled out nor shown yet.",
        ko=f"정확도 차이 {_pts(diff)}%p ({figures_ko}): 허용 오차 {tol_pts}%p를 넘는 저하 여부를 아직 판단할 수 없음.",
    )


def _error_rate(strata: list[Stratum], challenger: str, policy: CanaryPolicy) -> _Check:
    x1, n1, x0, n0 = _arrays(strata, challenger, "errors", "requests")
    paired = (n1 > 0) & (n0 > 0)
    nc, nb = int(n1[paired].sum()), int(n0[paired].sum())
    tol = policy.error_rate_tolerance
    numbers: dict[str, Any] = {"requests_baseline": nb, "requests_canary": nc, "tolerance": tol,
                               "strata": int(paired.sum())}
    if min(nb, nc) < policy.harm_min_requests:
        return _Check(
            metric="error_rate", status="insufficient", numbers=numbers,
            en=f"Error rate: only {nc:,} canary / {nb:,} baseline requests so far.",
            ko=f"오류율: 요청이 아직 부족함 (새 모델 {nc:,}건 / 기존 {nb:,}건).",
        )
    alpha = policy.alpha_per_metric
    d_arr, v_arr = stratified_difference(x1, n1, x0, n0)
    diff = float(d_arr)
    radius = float(cs_radius(float(v_arr), alpha, policy.tau_error_rate))
    low, high = diff - radius, diff + radius
    harm, ok = (bool(v) for v in judge(d_arr, np.asarray(radius), tol, higher_is_worse=True))
    ec, eb = float(x1[paired].sum()) / nc, float(x0[paired].sum()) / nb
    numbers |= {"baseline": eb, "canary": ec, "diff": diff, "cs_low": low, "cs_high": high, "level": 1 - alpha}
    lvl, tol_pts = _level(alpha), f"{tol * 100:.2f}"
    figures = f"{ec:.2%} vs baseline {eb:.2%} ({_pts(diff, 2)} pts, {lvl} CS {_cs(low, high, 2)}) " \
        f"on {nc:,} / {nb:,} requests"
    figures_ko = f"{ec:.2%} vs {eb:.2%}, {lvl} 신뢰구간 {_cs(low, high, 2)}%p, 요청 {nc:,} / {nb:,}건"
    if harm:
        return _Check(
            metric="error_rate", status="harm", numbers=numbers,
            en=f"Canary error rate {figures}: above the {tol_pts}-pt tolerance.",
            ko=f"새 모델의 오류율이 기존보다 {diff * 100:.2f}%p 높음 ({figures_ko}): 허용 오차 {tol_pts}%p 초과.",
        )
    if ok:
        return _Check(
            metric="error_rate", status="ok", numbers=numbers,
            en=f"Canary error rate {figures}: within the {tol_pts}-pt tolerance.",
            ko=f"오류율 차이 {_pts(diff, 2)}%p ({figures_ko}): 허용 오차 {tol_pts}%p 이내.",
        )
    return _Check(
        metric="error_rate", status="inconclusive", numbers=numbers,
        en=f"Canary error rate {figures}: a rise beyond the {tol_pts}-pt tolerance is not yet ruled out.",
        ko=f"오류율 차이 {_pts(diff, 2)}%p ({figures_ko}): "
        f"허용 오차 {tol_pts}%p를 넘는 증가 여부를 아직 판단할 수 없음.",
    )


def _standardised_latency(
    strata: list[Stratum], code: str, weights: np.ndarray, q: float, radius: float
) -> tuple[float, float, float | None]:
    """``(estimate, lower, upper)`` of one arm's ``q``-quantile of latency over the strata, each stratum's
    distribution weighted by ``weights`` (the same for both arms, so both describe the same traffic mix).

    Each request of stratum ``s`` carries ``w_s / n_s``; the quantile is the first histogram bucket whose
    cumulative weight reaches ``q``, the bounds those reaching ``q -/+ radius``, rounded outwards to whole
    buckets (``upper`` is ``None``, unbounded, beyond the data)."""
    mass: dict[int, float] = {}
    for stratum, weight in zip(strata, weights.tolist(), strict=True):
        arm = stratum.arms.get(code)
        if weight <= 0 or arm is None or arm.lat_n == 0:
            continue
        share = weight / arm.lat_n
        for bucket, count in arm.hist.items():
            mass[bucket] = mass.get(bucket, 0.0) + share * count
    buckets = sorted(mass)
    cumulative = np.cumsum([mass[b] for b in buckets])
    cumulative /= cumulative[-1]

    def at(level: float) -> int:
        return buckets[min(int(np.searchsorted(cumulative, level - 1e-12)), len(buckets) - 1)]

    low_b, high_b = bucket_bounds(at(q))
    estimate = math.sqrt(low_b * high_b) if low_b > 0 else high_b / 2
    lower = bucket_bounds(at(q - radius))[0] if q - radius > 0 else 0.0
    upper = bucket_bounds(at(q + radius))[1] if q + radius < 1 else None
    return estimate, lower, upper


def _latency(strata: list[Stratum], challenger: str, policy: CanaryPolicy) -> _Check:
    q, label = policy.latency_quantile, f"p{policy.latency_quantile * 100:g}"
    _, n1, _, n0 = _arrays(strata, challenger, "lat_n", "lat_n")
    use = (n1 > 0) & (n0 > 0)
    nc, nb = int(n1[use].sum()), int(n0[use].sum())
    numbers: dict[str, Any] = {"quantile": q, "count_baseline": nb, "count_canary": nc, "strata": int(use.sum())}
    if min(nb, nc) < policy.harm_min_requests:
        return _Check(
            metric="latency", status="insufficient", numbers=numbers,
            en=f"{label} latency: too few successful requests on one arm yet ({nc:,} / {nb:,}).",
            ko=f"{label} 응답 시간: 성공한 요청이 아직 부족함 ({nc:,} / {nb:,}건).",
        )
    m1, m0 = np.where(use, n1, 1.0), np.where(use, n0, 1.0)
    w = np.where(use, m1 * m0 / (m1 + m0), 0.0)
    w /= w.sum()
    alpha = policy.alpha_per_metric / 2  # one quantile CS per arm
    variance = q * (1 - q)
    rb = float(cs_radius(variance * float((w * w / m0).sum()), alpha, policy.tau_quantile))
    rc = float(cs_radius(variance * float((w * w / m1).sum()), alpha, policy.tau_quantile))
    b, b_low, b_high = _standardised_latency(strata, "b", w, q, rb)
    c, c_low, c_high = _standardised_latency(strata, challenger, w, q, rc)
    limit_rollback = policy.latency_limit(b_high) if b_high is not None else None
    limit_proceed = policy.latency_limit(b_low)
    numbers |= {
        "baseline": b, "canary": c, "baseline_low": b_low, "baseline_high": b_high, "canary_low": c_low,
        "canary_high": c_high, "limit_rollback": limit_rollback, "limit_proceed": limit_proceed,
        "level": 1 - policy.alpha_per_metric, "tolerance_rel": policy.latency_tolerance_rel,
        "tolerance_ms": policy.latency_tolerance_ms,
    }
    lvl = _level(policy.alpha_per_metric)
    tol = f"+{policy.latency_tolerance_rel:.0%} and +{policy.latency_tolerance_ms:g} ms"
    tol_ko = f"+{policy.latency_tolerance_rel:.0%} 및 +{policy.latency_tolerance_ms:g}ms"
    if limit_rollback is not None and c_low > limit_rollback:
        return _Check(
            metric="latency", status="harm", numbers=numbers,
            en=f"Canary {label} latency {c:.1f} ms vs baseline {b:.1f} ms ({lvl} CS: canary >= {c_low:.1f} ms, "
            f"baseline <= {_ms(b_high)} ms): slower than the tolerance ({tol}, limit {limit_rollback:.1f} ms).",
            ko=f"새 모델의 {label} 응답 시간이 기존보다 느림 ({c:.1f}ms vs {b:.1f}ms, {lvl} 신뢰구간: "
            f"새 모델 >= {c_low:.1f}ms > 허용 한도 {limit_rollback:.1f}ms, 허용 {tol_ko}).",
        )
    if c_high is not None and c_high <= limit_proceed:
        return _Check(
            metric="latency", status="ok", numbers=numbers,
            en=f"{label} latency {c:.1f} vs {b:.1f} ms: within the tolerance "
            f"(canary <= {c_high:.1f} ms <= limit {limit_proceed:.1f} ms).",
            ko=f"{label} 응답 시간 {c:.1f}ms vs {b:.1f}ms: 허용 범위 이내 "
            f"(새 모델 <= {c_high:.1f}ms <= 한도 {limit_proceed:.1f}ms).",
        )
    return _Check(
        metric="latency", status="inconclusive", numbers=numbers,
        en=f"{label} latency {c:.1f} vs {b:.1f} ms: not yet shown within the tolerance "
        f"(canary <= {_ms(c_high)} ms vs limit {limit_proceed:.1f} ms).",
        ko=f"{label} 응답 시간 {c:.1f}ms vs {b:.1f}ms: 허용 범위 이내인지 아직 판단할 수 없음 "
        f"(새 모델 상한 {_ms(c_high)}ms, 한도 {limit_proceed:.1f}ms).",
    )


# --- the verdict ------------------------------------------------------------------------------
def _step_text(current: float | None, policy: CanaryPolicy) -> tuple[str, str]:
    if current is None:
        return "", ""
    nxt = policy.next_step(current)
    if nxt is None:
        return f" (already at {current:g}%)", f" (이미 {current:g}%)"
    return f" ({current:g}% → {nxt:g}%)", f" ({current:g}% → {nxt:g}%)"


def _conclude(sentences: list[str], tail: str) -> str:
    """Sentences joined, the last one ending in the recommendation: "... tolerance → rollback."."""
    return " ".join(sentences).removesuffix(".") + f" {tail}."


def _headline(baseline: ArmTotals, canary: ArmTotals, accuracy: _Check) -> tuple[str, str]:
    """The seed's style: "새 모델이 성능 향상을 보임 (정확도 +2%, 응답 시간 -3ms)"."""
    n = accuracy.numbers
    mb, mc = baseline.mean_latency_ms, canary.mean_latency_ms
    dms = (mc - mb) if mb is not None and mc is not None else 0.0
    dms_text = f"{dms:+.0f}" if abs(dms) >= 1 else f"{dms:+.1f}".replace("-0.0", "+0.0")
    figures = f"accuracy {_pts(n['diff'])} pts, mean latency {dms_text} ms"
    figures_ko = f"정확도 {_pts(n['diff'])}%, 응답 시간 {dms_text}ms"
    if n["cs_low"] > 0:
        return f"Canary improves on baseline ({figures}).", f"새 모델이 성능 향상을 보임 ({figures_ko})."
    if n["diff"] > 0:
        return (
            f"Canary trends better than baseline ({figures}; the gain is not yet significant).",
            f"새 모델이 기존보다 나은 경향을 보임 ({figures_ko}; 향상은 아직 통계적으로 확정되지 않음).",
        )
    return (
        f"Canary is not worse than baseline beyond tolerance ({figures}).",
        f"새 모델이 기존 모델 대비 허용 범위를 넘는 성능 저하 없음 ({figures_ko}).",
    )


def comparison(numbers: dict[str, Any]) -> list[dict[str, Any]]:
    """The compared metrics of a verdict's numbers, each with its anytime-valid interval of the difference."""
    out = []
    for metric, check in (numbers.get("checks") or {}).items():
        row: dict[str, Any] = {"metric": metric, "status": check["status"]}
        if metric == "latency":
            row |= {
                "quantile": check.get("quantile"),
                "baseline_ms": check.get("baseline"),
                "canary_ms": check.get("canary"),
                "canary_interval_ms": [check.get("canary_low"), check.get("canary_high")],
                "baseline_interval_ms": [check.get("baseline_low"), check.get("baseline_high")],
                "limit_ms": check.get("limit_proceed"),
                "level": check.get("level"),
                "interval": "anytime-valid (confidence sequence) for each arm's quantile at the current step",
            }
        else:
            row |= {
                "difference": check.get("diff"),
                "anytime_valid_interval": [check.get("cs_low"), check.get("cs_high")]
                if check.get("cs_low") is not None
                else None,
                "level": check.get("level"),
                "tolerance": check.get("tolerance"),
                "interval": "anytime-valid (confidence sequence) of canary minus baseline, stratified",
            }
        out.append(row)
    return out


def decide(
    evidence: Evidence,
    policy: CanaryPolicy | None = None,
    *,
    current_percentage: float | None = None,
    now: datetime | None = None,
    challenger: str = "c",
    model_ids: tuple[str | None, str | None] = (None, None),
) -> Verdict:
    """The recommendation from an analysis's evidence (rules in the module docstring).

    ``current_percentage`` adds the next traffic step to the reasons; ``now`` is needed for
    ``label_maturity_seconds``;
    ``challenger`` is ``"c"`` (canary) or ``"s"`` (shadow); ``model_ids`` = (baseline, challenger).
    """
    policy = policy or CanaryPolicy()
    baseline = evidence.pooled("b").totals("baseline", model_ids[0])
    canary = evidence.pooled(challenger).totals(ARM_NAME[challenger], model_ids[1])
    strata = evidence.ordered()
    mature = strata
    if policy.label_maturity_seconds > 0 and now is not None:
        cutoff = now - timedelta(seconds=policy.label_maturity_seconds)
        mature = [s for s in strata if s.end <= cutoff]
    numbers: dict[str, Any] = {
        "policy": policy.model_dump(mode="json"),
        "alpha_per_metric": policy.alpha_per_metric,
        "method": METHOD,
        "baseline": baseline.summary(),
        "canary": canary.summary(),
        "metrics": status_metrics(baseline, canary),
        "strata": len(strata),
        "mature_strata": len(mature),
        "current_percentage": current_percentage,
        "next_percentage": policy.next_step(current_percentage) if current_percentage is not None else None,
    }
    checks = [
        _accuracy(mature, challenger, policy),
        _error_rate(strata, challenger, policy),
        _latency(strata, challenger, policy),
    ]
    numbers["checks"] = {check.metric: {"status": check.status, **check.numbers} for check in checks}
    step_en, step_ko = _step_text(current_percentage, policy)
    harms = [check for check in checks if check.status == "harm"]
    if harms:
        return Verdict(
            recommendation="rollback",
            reason_en=_conclude([check.en for check in harms], "→ rollback"),
            reason_ko=_conclude([check.ko for check in harms], "→ 롤백 권장"),
            numbers=numbers,
        )
    if min(baseline.requests, canary.requests) < policy.min_requests:
        return Verdict(
            recommendation="hold",
            reason_en=f"Not enough traffic yet: {canary.requests:,} canary / {baseline.requests:,} baseline requests "
            f"(at least {policy.min_requests:,} per arm needed before proceeding; no harm shown so far) → hold.",
            reason_ko=f"데이터 부족: 요청 새 모델 {canary.requests:,}건 / 기존 {baseline.requests:,}건 "
            f"(다음 단계 전 모델별 최소 {policy.min_requests:,}건 필요, 현재까지 저하 없음) → 보류.",
            numbers=numbers,
        )
    if all(check.status == "ok" for check in checks):
        head_en, head_ko = _headline(baseline, canary, checks[0])
        return Verdict(
            recommendation="proceed",
            reason_en=_conclude([head_en, *(check.en for check in checks)], f"→ proceed{step_en}"),
            reason_ko=_conclude([head_ko, *(check.ko for check in checks)], f"→ 다음 단계 진행 권장{step_ko}"),
            numbers=numbers,
        )
    pending = [check for check in checks if check.status != "ok"]
    return Verdict(
        recommendation="hold",
        reason_en=_conclude([check.en for check in pending], "→ hold"),
        reason_ko=_conclude([check.ko for check in pending], "→ 보류"),
        numbers=numbers,
    )
