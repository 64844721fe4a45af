"""SYNTHETIC card transactions for the demo and tests (labelled, time-stamped, 1-3 % fraud).

Nothing here is real data. Fraud is planted with a known generative story (night hours,
country mismatch, high amounts, bursts of activity, young accounts) so that models have
something to learn, and with noise so that they cannot be perfect."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

SYNTHETIC = True
FEATURES = [
    "amount",
    "log_amount",
    "hour",
    "merchant_category",
    "country_mismatch",
    "card_present",
    "txn_count_1h",
    "txn_count_24h",
    "amount_vs_avg_ratio",
    "account_age_days",
]


def transactions(
    start: date, end: date, *, per_day: int = 400, fraud_rate: float = 0.02, seed: int = 7
) -> list[dict[str, Any]]:
    """``per_day`` records for every day from ``start`` to ``end`` inclusive."""
    rng = np.random.default_rng(seed)
    days = (end - start).days + 1
    n = max(days, 0) * per_day
    if n == 0:
        return []
    day_index = np.repeat(np.arange(days), per_day)
    fraud = rng.random(n) < fraud_rate
    hour = np.where(fraud, rng.choice(24, n, p=_night_weights()), rng.choice(24, n, p=_day_weights()))
    seconds = hour * 3600 + rng.integers(0, 3600, n)
    amount = np.where(fraud, rng.lognormal(5.0, 1.0, n), rng.lognormal(3.6, 0.9, n)).round(2)
    mismatch = np.where(fraud, rng.random(n) < 0.55, rng.random(n) < 0.04)
    present = np.where(fraud, rng.random(n) < 0.15, rng.random(n) < 0.6)
    count_1h = np.where(fraud, rng.poisson(3.0, n), rng.poisson(0.6, n))
    count_24h = count_1h + np.where(fraud, rng.poisson(6.0, n), rng.poisson(3.0, n))
    ratio = np.where(fraud, rng.lognormal(1.0, 0.6, n), rng.lognormal(0.0, 0.4, n)).round(3)
    age = np.where(fraud, rng.exponential(60, n), rng.exponential(700, n)).round(0)
    category = np.where(fraud, rng.choice(10, n, p=_fraud_categories()), rng.integers(0, 10, n))
    origin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    out = []
    for i in range(n):
        ts = origin + timedelta(days=int(day_index[i]), seconds=int(seconds[i]))
        out.append(
            {
                "timestamp": ts,
                "features": {
                    "amount": float(amount[i]),
                    "log_amount": round(float(np.log1p(amount[i])), 4),
                    "hour": int(hour[i]),
                    "merchant_category": int(category[i]),
                    "country_mismatch": int(mismatch[i]),
                    "card_present": int(present[i]),
                    "txn_count_1h": int(count_1h[i]),
                    "txn_count_24h": int(count_24h[i]),
                    "amount_vs_avg_ratio": float(ratio[i]),
                    "account_age_days": float(age[i]),
                },
                "label": int(fraud[i]),
                "source": "synthetic-demo",
            }
        )
    out.sort(key=lambda r: r["timestamp"])
    return out


def _day_weights() -> np.ndarray:
    w = np.array([1, 0.5, 0.3, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4, 5, 6, 5, 4, 4, 4, 5, 6, 6, 5, 4, 3, 2], dtype=float)
    return w / w.sum()


def _night_weights() -> np.ndarray:
    w = np.array([5, 6, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5], dtype=float)
    return w / w.sum()


def _fraud_categories() -> np.ndarray:
    w = np.array([1, 1, 4, 1, 1, 3, 1, 1, 4, 1], dtype=float)
    return w / w.sum()
