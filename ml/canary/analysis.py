"""Canary verdicts that stay valid when re-checked after every window.

Method
======
Every comparison is a **confidence sequence** (CS): an interval that contains the true value at
*all* looks simultaneously with probability >= 1 - alpha, so the analyser may look after every
window, forever, without the false-alarm rate growing (a fixed-sample 95 % interval checked after
each of 30 windows raises false alarms several times over). The boundary is the normal-mixture
(mSPRT) boundary of :func:`ml.canary.stats.mixture_radius`:

    ``radius(V) = sqrt(2 V (V + tau²) / tau² * log(sqrt((V + tau²) / V) / alpha_m))``

where ``V`` is the variance of the estimate at this look. It is asymptotic (valid once the CLT
applies; the minimum-sample rules make sure of that) and holds under changing traffic splits,
because the difference of two running means is a Brownian motion in information time ``1/V``.

``alpha`` is split over the three guarded metrics (Bonferroni), ``alpha_m = alpha / 3``, so the
probability that a canary *within* tolerance on every metric is ever rolled back is <= alpha;
a reported "98.3% CS" is the per-metric level ``1 - alpha_m`` for the default alpha = 0.05.

1. **Accuracy** (labelled predictions): ``d = acc_canary - acc_baseline``,
   ``V = s1 (1 - s1) / n1 + s0 (1 - s0) / n0`` with Laplace-smoothed ``s = (correct + 1) / (n + 2)``,
   ``CS = d ± radius(V)`` with ``tau = tau_accuracy``.
2. **Error rate** (all requests): the same on errors / requests with ``tau = tau_error_rate``.
3. **Latency quantile** (p95 of successful requests; robust, distribution-free): each arm's
   quantile gets an order-statistic CS: the true p95 lies between the empirical quantiles at
   levels ``0.95 ∓ r`` with ``r = radius(0.95 * 0.05 / n)`` at ``alpha_m / 2`` per arm (Howard &
   Ramdas 2022: at the fixed point ``x = true p95``, the share of requests ``<= x`` is a
   Bernoulli(0.95) running mean). The tolerance is ``limit(b) = max(b * (1 + latency_tolerance_rel),
   b + latency_tolerance_ms)``: slower only counts when it is both relatively and absolutely material.

Decision rule (``decide``)
==========================
* ``hold`` when either arm has fewer than ``min_requests`` requests (nothing can be judged yet).
* ``rollback`` when any metric is worse beyond its tolerance with confidence:
  accuracy ``CS_high < -accuracy_tolerance`` (needs ``min_labelled`` labels per arm);
  error rate ``CS_low > error_rate_tolerance``;
  latency ``canary_p95_low > limit(baseline_p95_high)``.
  Error rate and latency can trigger a rollback before labels arrive: a canary that fails every
  request must not wait for labels it can never get.
* ``proceed`` when every arm has ``min_requests`` requests and ``min_labelled`` labels, and every
  metric is non-inferior with confidence: accuracy ``CS_low > -accuracy_tolerance``, error rate
  ``CS_high <= error_rate_tolerance``, latency ``canary_p95_high <= limit(baseline_p95_low)``.
* ``hold`` otherwise (some metric inconclusive, or too few labels), with what is missing.

Since the CSs are time-uniform, a verdict can be recomputed after every window on the cumulative
totals (:meth:`ml.canary.aggregator.CanaryAggregator.totals`), across traffic steps, and acted on
the first time it says ``rollback`` or ``proceed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml.base import Params
from ml.canary.aggregator import ArmTotals
from ml.canary.stats import mixture_radius

Recommendation = Literal["proceed", "hold", "rollback"]
Status = Literal["harm", "ok", "inconclusive", "insufficient"]
DEFAULT_STEPS: tuple[float, ...] = (10.0, 25.0, 50.0, 100.0)
GUARDED_METRICS = 3  # accuracy, error rate, latency quantile: alpha is split over them


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
    min_requests: int = Field(500, ge=1, description="requests per arm before any verdict")
    min_labelled: int = Field(300, ge=1, description="labelled predictions per arm before judging accuracy")
    tau_accuracy: float = Field(0.025, gt=0, description="mixture sd for the accuracy difference")
    tau_error_rate: float = Field(0.005, gt=0, description="mixture sd for the error-rate difference")
    tau_quantile: float = Field(0.01, gt=0, description="mixture sd for the latency quantile level")
    steps: tuple[float, ...] = Field(DEFAULT_STEPS, description="canary traffic percentages, ascending")

    @field_validator("steps")
    @classmethod
    def _ascending(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
            raise ValueError("steps must be strictly ascending percentages in (0, 100]")
        return steps

    @property
    def alpha_per_metric(self) -> float:
        return self.alpha / GUARDED_METRICS

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


def _difference_cs(x1: int, n1: int, x0: int, n0: int, tau: float, alpha: float) -> tuple[float, float, float]:
    """``(d, low, high)``: difference of proportions canary - baseline and its confidence sequence."""
    s1, s0 = (x1 + 1) / (n1 + 2), (x0 + 1) / (n0 + 2)
    variance = s1 * (1 - s1) / n1 + s0 * (1 - s0) / n0
    diff = x1 / n1 - x0 / n0
    radius = mixture_radius(variance, tau, alpha)
    return diff, diff - radius, diff + radius


def _accuracy(baseline: ArmTotals, canary: ArmTotals, policy: CanaryPolicy) -> _Check:
    nb, nc, tol = baseline.labelled, canary.labelled, policy.accuracy_tolerance
    numbers: dict[str, Any] = {
        "labelled_baseline": nb, "labelled_canary": nc, "tolerance": tol, "min_labelled": policy.min_labelled,
    }
    if min(nb, nc) < policy.min_labelled:
        return _Check(
            metric="accuracy", status="insufficient", numbers=numbers,
            en=f"Accuracy: only {nc:,} canary / {nb:,} baseline labelled predictions so far "
            f"(at least {policy.min_labelled:,} per arm needed).",
            ko=f"정확도: 라벨이 아직 부족함 (새 모델 {nc:,}건 / 기존 {nb:,}건, "
            f"모델별 최소 {policy.min_labelled:,}건 필요).",
        )
    alpha = policy.alpha_per_metric
    diff, low, high = _difference_cs(canary.correct, nc, baseline.correct, nb, policy.tau_accuracy, alpha)
    ac, ab = canary.correct / nc, baseline.correct / nb
    numbers |= {"baseline": ab, "canary": ac, "diff": diff, "cs_low": low, "cs_high": high, "level": 1 - alpha}
    lvl, tol_pts = _level(alpha), f"{tol * 100:.1f}"
    figures = f"{ac:.3f} vs baseline {ab:.3f} ({_pts(diff)} pts, {lvl} CS {_cs(low, high)}) " \
        f"on {nc:,} / {nb:,} labelled predictions"
    figures_ko = f"{ac:.3f} vs {ab:.3f}, {lvl} 신뢰구간 {_cs(low, high)}%p, 라벨 {nc:,} / {nb:,}건"
    if high < -tol:
        return _Check(
            metric="accuracy", status="harm", numbers=numbers,
            en=f"Canary accuracy {figures}: worse than the {tol_pts}-pt tolerance.",
            ko=f"새 모델의 정확도가 기존보다 {abs(diff) * 100:.1f}%p 낮음 ({figures_ko}): 허용 오차 {tol_pts}%p 초과.",
        )
    if low > -tol:
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


def _error_rate(baseline: ArmTotals, canary: ArmTotals, policy: CanaryPolicy) -> _Check:
    nb, nc, tol = baseline.requests, canary.requests, policy.error_rate_tolerance
    alpha = policy.alpha_per_metric
    diff, low, high = _difference_cs(canary.errors, nc, baseline.errors, nb, policy.tau_error_rate, alpha)
    ec, eb = canary.errors / nc, baseline.errors / nb
    numbers: dict[str, Any] = {
        "requests_baseline": nb, "requests_canary": nc, "baseline": eb, "canary": ec, "diff": diff,
        "cs_low": low, "cs_high": high, "level": 1 - alpha, "tolerance": tol,
    }
    lvl, tol_pts = _level(alpha), f"{tol * 100:.2f}"
    figures = f"{ec:.2%} vs baseline {eb:.2%} ({_pts(diff, 2)} pts, {lvl} CS {_cs(low, high, 2)}) " \
        f"on {nc:,} / {nb:,} requests"
    figures_ko = f"{ec:.2%} vs {eb:.2%}, {lvl} 신뢰구간 {_cs(low, high, 2)}%p, 요청 {nc:,} / {nb:,}건"
    if low > tol:
        return _Check(
            metric="error_rate", status="harm", numbers=numbers,
            en=f"Canary error rate {figures}: above the {tol_pts}-pt tolerance.",
            ko=f"새 모델의 오류율이 기존보다 {diff * 100:.2f}%p 높음 ({figures_ko}): 허용 오차 {tol_pts}%p 초과.",
        )
    if high <= tol:
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


def _latency(baseline: ArmTotals, canary: ArmTotals, policy: CanaryPolicy) -> _Check:
    q, label = policy.latency_quantile, f"p{policy.latency_quantile * 100:g}"
    nb, nc = baseline.latency_count, canary.latency_count
    numbers: dict[str, Any] = {"quantile": q, "count_baseline": nb, "count_canary": nc}
    if min(nb, nc) == 0:
        return _Check(
            metric="latency", status="insufficient", numbers=numbers,
            en=f"{label} latency: no successful request on one arm yet.",
            ko=f"{label} 응답 시간: 한쪽 모델에 성공한 요청이 아직 없음.",
        )
    alpha = policy.alpha_per_metric / 2  # one quantile CS per arm
    variance = q * (1 - q)
    rb = mixture_radius(variance / nb, policy.tau_quantile, alpha)
    rc = mixture_radius(variance / nc, policy.tau_quantile, alpha)
    b_low, b_high = baseline.latency_quantile_bounds(q, rb)
    c_low, c_high = canary.latency_quantile_bounds(q, rc)
    b, c = baseline.latency_quantile(q), canary.latency_quantile(q)
    assert b is not None and c is not None
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


def decide(
    baseline: ArmTotals,
    canary: ArmTotals,
    policy: CanaryPolicy | None = None,
    *,
    current_percentage: float | None = None,
) -> Verdict:
    """The recommendation for a canary from both arms' cumulative totals (rules in the module docstring).

    ``current_percentage`` (optional) only adds the next traffic step to the reasons and numbers.
    """
    policy = policy or CanaryPolicy()
    numbers: dict[str, Any] = {
        "policy": policy.model_dump(mode="json"),
        "alpha_per_metric": policy.alpha_per_metric,
        "baseline": baseline.summary(),
        "canary": canary.summary(),
        "metrics": status_metrics(baseline, canary),
        "current_percentage": current_percentage,
        "next_percentage": policy.next_step(current_percentage) if current_percentage is not None else None,
    }
    step_en, step_ko = _step_text(current_percentage, policy)
    if min(baseline.requests, canary.requests) < policy.min_requests:
        numbers["checks"] = {}
        return Verdict(
            recommendation="hold",
            reason_en=f"Not enough traffic yet: {canary.requests:,} canary / {baseline.requests:,} baseline requests "
            f"(at least {policy.min_requests:,} per arm needed) → hold.",
            reason_ko=f"데이터 부족: 요청 새 모델 {canary.requests:,}건 / 기존 {baseline.requests:,}건 "
            f"(모델별 최소 {policy.min_requests:,}건 필요) → 보류.",
            numbers=numbers,
        )
    checks = [
        _accuracy(baseline, canary, policy),
        _error_rate(baseline, canary, policy),
        _latency(baseline, canary, policy),
    ]
    numbers["checks"] = {check.metric: {"status": check.status, **check.numbers} for check in checks}
    harms = [check for check in checks if check.status == "harm"]
    if harms:
        return Verdict(
            recommendation="rollback",
            reason_en=_conclude([check.en for check in harms], "→ rollback"),
            reason_ko=_conclude([check.ko for check in harms], "→ 롤백 권장"),
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
