"""The one small interface every trainer and agent in ``ml/`` follows.

Modelled on scikit-learn's estimator contract:

* parameters are a pydantic model (``extra="forbid"``) validated in ``__init__``,
  so a bad hyperparameter fails before any work starts;
* ``fit(...)`` learns and returns ``self``; it reports progress through an
  optional callback that may raise :class:`TrainingCancelled` to stop early;
* ``predict(...)`` uses what was learned;
* ``to_bytes()`` / ``from_bytes()`` give the artifact stored in GridFS.

Nothing in ``ml/`` touches the network: callers load the data and store the bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict

ProgressCallback = Callable[[float, Mapping[str, Any]], None]
"""Called with (percent done in 0..100, a few live figures). May raise TrainingCancelled."""


class TrainingCancelled(Exception):
    """Raised from a progress callback to stop training at the next progress step."""


class Params(BaseModel):
    """Base for hyperparameter models: unknown names are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Estimator(Protocol):
    """fit / predict / serialise: the contract of every trainer and agent in ml/."""

    params: Params

    def fit(self, *args: Any, progress: ProgressCallback | None = None, **kwargs: Any) -> Self: ...

    def predict(self, *args: Any, **kwargs: Any) -> Any: ...

    def to_bytes(self) -> bytes: ...

    @classmethod
    def from_bytes(cls, data: bytes) -> Self: ...


class Throttle:
    """Wraps a progress callback so it fires at most every ``min_interval_s`` seconds
    or every ``min_step`` percent, and always at 100. Cancellation checks ride on it."""

    def __init__(
        self,
        callback: ProgressCallback | None,
        *,
        min_interval_s: float = 0.5,
        min_step: float = 5.0,
    ) -> None:
        self._callback = callback
        self._min_interval_s = min_interval_s
        self._min_step = min_step
        self._last_time = float("-inf")
        self._last_pct = float("-inf")

    def __call__(self, pct: float, figures: Mapping[str, Any] | None = None) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        if pct >= 100.0 or now - self._last_time >= self._min_interval_s or pct - self._last_pct >= self._min_step:
            self._last_time = now
            self._last_pct = pct
            self._callback(min(max(pct, 0.0), 100.0), dict(figures or {}))
