"""Small statistical building blocks shared by the aggregator and the analysis.

* :func:`wilson_interval`: the fixed-sample Wilson score interval, used for the descriptive
  per-window figures (accuracy, precision, recall). It is *not* valid under repeated looks; the
  verdict never uses it.
* :func:`mixture_radius`: the half-width of the always-valid normal-mixture (mSPRT) confidence
  sequence, used by :mod:`ml.canary.analysis` for every verdict.
* the latency histogram layout: log-spaced buckets of 1 % relative width, so cumulative p95s
  need bounded memory whatever the traffic, and quantile bounds are rounded outwards.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054

# --- latency histogram layout -------------------------------------------------------------
HIST_MIN_MS = 0.01
"""Bucket 0 holds every latency below 0.01 ms (including 0)."""
HIST_GROWTH = 1.01
"""Bucket ``i >= 1`` holds ``[HIST_MIN_MS * G**(i-1), HIST_MIN_MS * G**i)``: 1 % wide."""
_LOG_GROWTH = math.log(HIST_GROWTH)


def latency_bucket(latency_ms: float) -> int:
    """Histogram bucket of a latency in milliseconds."""
    if latency_ms < HIST_MIN_MS:
        return 0
    return int(math.log(latency_ms / HIST_MIN_MS) / _LOG_GROWTH) + 1


def bucket_bounds(index: int) -> tuple[float, float]:
    """``(lower, upper)`` latency bounds in ms of a histogram bucket."""
    if index <= 0:
        return 0.0, HIST_MIN_MS
    return HIST_MIN_MS * HIST_GROWTH ** (index - 1), HIST_MIN_MS * HIST_GROWTH**index


# --- intervals ------------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (``None`` when ``n == 0``).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = successes / n``.
    """
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mixture_radius(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the two-sided normal-mixture confidence sequence at level ``1 - alpha``.

    For an estimate ``theta_hat`` whose variance is ``V`` (information ``I = 1/V``), the mixture
    martingale of Robbins (1970) / the mSPRT of Johari et al. (2017), mixing the drift over
    ``N(0, tau²)``, is

        ``Lambda = sqrt(V / (V + tau²)) * exp(tau² (theta_hat - theta)² / (2 V (V + tau²)))``

    and Ville's inequality gives ``P(exists t: Lambda_t >= 1/alpha) <= alpha``. Inverting,

        ``|theta_hat - theta| < sqrt(2 V (V + tau²) / tau² * log(sqrt((V + tau²) / V) / alpha))``

    holds at every look simultaneously with probability ``>= 1 - alpha`` (asymptotically, i.e.
    once the CLT applies to ``theta_hat``). ``tau`` sets where the sequence is tightest: at
    ``V ≈ tau² / 7.9`` for ``alpha = 0.05`` (Waudby-Smith et al. 2023).
    """
    if variance <= 0.0:
        return 0.0
    if not (tau > 0.0 and 0.0 < alpha < 1.0):
        raise ValueError("tau must be > 0 and alpha in (0, 1)")
    tau2 = tau * tau
    spread = (variance + tau2) / tau2
    return math.sqrt(2.0 * variance * spread * math.log(math.sqrt((variance + tau2) / variance) / alpha))
