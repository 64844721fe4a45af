"""Small statistical building blocks shared by the aggregator and the analysis.

* :func:`wilson_interval`: the fixed-sample Wilson score interval, used for the descriptive
  per-window figures (accuracy, precision, recall). It is *not* valid under repeated looks; the
  verdict never uses it.
* :func:`mixture_radius`: the half-width of the always-valid normal-mixture (mSPRT) confidence
  sequence for one mixing scale ``tau``;
* :func:`cs_radius`: the same boundary for a *discrete mixture* of scales (vectorised), used by
  :mod:`ml.canary.analysis` for every verdict and by :mod:`ml.canary.calibration` for the
  Monte-Carlo calibration: one scale is tight for one sample size only; averaging the martingales of
  several scales is still a martingale (Ville's inequality still applies), tight from a few dozen to
  hundreds of thousands of observations.
* the latency histogram layout: log-spaced buckets of 1 % relative width, so cumulative p95s
  need bounded memory whatever the traffic, and quantile bounds are rounded outwards.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

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


# --- a discrete mixture of scales ------------------------------------------------------------
_LOG_V_GRID = np.linspace(math.log(1e-12), math.log(10.0), 6001)
"""log-variance grid on which the mixture boundary is tabulated (relative error of the radius < 1e-6)"""


def _mixture_excess(u: np.ndarray, rho: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_k w_k Lambda_k - 1/alpha`` pieces: the mixture martingale at ``|theta_hat - theta|^2 = u V``.

    With ``rho_k = tau_k^2 / V``: ``Lambda_k = (1 + rho_k)^(-1/2) exp(u rho_k / (2 (1 + rho_k)))``.
    """
    return (weights / np.sqrt(1.0 + rho) * np.exp(u[..., None] * rho / (2.0 * (1.0 + rho)))).sum(axis=-1)


@lru_cache(maxsize=64)
def _boundary_table(alpha: float, taus: tuple[float, ...]) -> np.ndarray:
    """``u*(log V)`` on ``_LOG_V_GRID``: the squared radius in units of ``V`` where the mixture reaches ``1/alpha``.

    Solved by bisection (60 halvings) between 0 and the tightest single-scale bound at ``alpha * w_k``
    (the mixture exceeds each of its terms, so the root lies below every such bound).
    """
    if not (0.0 < alpha < 1.0) or not taus or any(t <= 0 for t in taus):
        raise ValueError("alpha must be in (0, 1) and every tau > 0")
    tau2 = np.asarray(taus, dtype=np.float64) ** 2
    weights = np.full(len(taus), 1.0 / len(taus))
    variance = np.exp(_LOG_V_GRID)
    rho = tau2[None, :] / variance[:, None]  # grid x scales
    single = 2.0 * (1.0 + rho) / rho * np.log(np.sqrt(1.0 + rho) / (alpha * weights))
    low, high = np.zeros(len(variance)), single.min(axis=1)
    for _ in range(60):
        mid = (low + high) / 2.0
        above = _mixture_excess(mid, rho, weights) >= 1.0 / alpha
        high = np.where(above, mid, high)
        low = np.where(above, low, mid)
    return high


def cs_radius(variance: float | np.ndarray, alpha: float, taus: tuple[float, ...]) -> np.ndarray:
    """Half-width of the two-sided confidence sequence at level ``1 - alpha`` for an estimate of variance ``V``,
    mixing the normal-mixture martingales of the scales ``taus`` with equal weights.

    For one scale it equals :func:`mixture_radius`. Vectorised over ``variance``; ``V <= 0`` gives 0 and a
    ``V`` outside the table (``[1e-12, 10]``) is clamped to it (such variances do not occur for proportions
    of at least one observation).
    """
    v = np.asarray(variance, dtype=np.float64)
    u = np.interp(np.log(np.clip(v, 1e-12, 10.0)), _LOG_V_GRID, _boundary_table(float(alpha), tuple(taus)))
    return np.where(v > 0, np.sqrt(np.maximum(v, 0.0) * u), 0.0)
