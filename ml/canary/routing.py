"""Sticky, monotone traffic splitting between the baseline (production) arm and the canary arm.

A routing key (user id, transaction id, prediction id ...) is hashed with SHA-256 into one of
10,000 buckets (basis points). A key goes to the canary when its bucket is below
``canary_percentage * 100``. Hence:

* **sticky**: the same key always lands in the same bucket, in every process and every Python
  version (no built-in ``hash``, whose value changes with ``PYTHONHASHSEED``);
* **monotone**: raising the percentage only moves keys from baseline to canary, never back, so a
  user who saw the canary at 10 % keeps seeing it at 25 %, 50 % and 100 %;
* **resolution** of 0.01 percentage point (``12.5`` and ``33.33`` are honoured).

``salt`` (e.g. the canary id) re-shuffles which keys form the first 10 %: without it every
canary would be tried on the same users first.
"""

from __future__ import annotations

import hashlib
from typing import Literal

Arm = Literal["canary", "baseline"]
BUCKETS = 10_000


def bucket(routing_key: str, *, salt: str = "") -> int:
    """The key's bucket in ``[0, 10000)``: the first 8 bytes of SHA-256(salt ":" key), big-endian, mod 10,000."""
    data = f"{salt}:{routing_key}".encode() if salt else routing_key.encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % BUCKETS


def canary_threshold(canary_percentage: float) -> int:
    """Number of buckets (out of 10,000) given to the canary at ``canary_percentage`` in [0, 100]."""
    if not 0.0 <= canary_percentage <= 100.0:
        raise ValueError(f"canary_percentage must be within [0, 100], got {canary_percentage!r}")
    return round(canary_percentage * (BUCKETS // 100))


def choose_arm(routing_key: str, canary_percentage: float, *, salt: str = "") -> Arm:
    """``"canary"`` when the key's bucket is below ``canary_percentage * 100``, else ``"baseline"``."""
    return "canary" if bucket(routing_key, salt=salt) < canary_threshold(canary_percentage) else "baseline"
