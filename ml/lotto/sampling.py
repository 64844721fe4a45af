"""Sampling distinct sets from per-number weights, and the set-level model score (``confidence_score``).

* Sampling: six numbers without replacement with probability proportional to their weights
  (successive sampling, done for many sets at once with the Gumbel-top-k trick), then, when the model
  has set-level factors (2호기) or a hard filter (premium), accept–reject so that the sets follow
  ``P(set) ∝ successive-sampling probability × set factor × 1[passes filter]``.
* ``confidence_score`` of a set = the share of uniformly random sets whose model score is lower
  (ties count half), against a fixed reference sample of 4,000 uniform sets, computed as
  ``(lower + ties/2 + 1/2) / 4001`` so it stays strictly inside (0, 1). The model score is
  ``Σ log weight_i + log set_factor`` (−∞ if the set fails the premium filter). It says how strongly
  the *model* prefers the set. It is NOT a chance of winning: every set has the same 1 / 8,145,060
  chance of matching the next draw. Under the uniform (basic) model every set scores 0.5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ml.lotto.draws import NUMBER_MAX, NUMBERS_PER_DRAW

SetFunction = Callable[[np.ndarray], np.ndarray]
"""Maps an (N, 6) array of sets to N values (factors >= 0, or booleans for filters)."""

REFERENCE_SETS = 4000
_REFERENCE_SEED = 6_45


def make_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """An injectable RNG: pass a Generator, a seed, or None for fresh OS entropy."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def gumbel_top_k(weights: np.ndarray, n_sets: int, rng: np.random.Generator, k: int = NUMBERS_PER_DRAW) -> np.ndarray:
    """``n_sets`` sets of ``k`` numbers (1-based, sorted rows) by successive sampling ∝ ``weights``."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (NUMBER_MAX,) or np.any(weights < 0) or np.count_nonzero(weights) < k:
        raise ValueError("weights must be 45 non-negative values with at least six above zero")
    with np.errstate(divide="ignore"):
        keys = np.log(weights)[None, :] + rng.gumbel(size=(n_sets, NUMBER_MAX))
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    return np.sort(top, axis=1) + 1


@functools.cache
def reference_sets() -> np.ndarray:
    """A fixed sample of uniformly random sets (the yardstick for ``confidence_score``)."""
    rng = np.random.default_rng(_REFERENCE_SEED)
    return gumbel_top_k(np.ones(NUMBER_MAX), REFERENCE_SETS, rng)


def set_log_scores(
    sets: np.ndarray,
    weights: np.ndarray,
    *,
    set_factor: SetFunction | None = None,
    accept: SetFunction | None = None,
) -> np.ndarray:
    """``Σ log weight_i + log set_factor`` per set; −∞ where ``accept`` is False."""
    array = np.asarray(sets, dtype=np.int64)
    with np.errstate(divide="ignore"):
        log_w = np.log(np.asarray(weights, dtype=np.float64))
        scores = log_w[array - 1].sum(axis=1)
        if set_factor is not None:
            scores = scores + np.log(set_factor(array))
    if accept is not None:
        scores = np.where(accept(array), scores, -np.inf)
    return scores


def confidence_scores(
    sets: np.ndarray,
    weights: np.ndarray,
    *,
    set_factor: SetFunction | None = None,
    accept: SetFunction | None = None,
) -> np.ndarray:
    """Model-score percentile of each set among uniformly random sets, in [0, 1] (see module docstring)."""
    reference = np.sort(set_log_scores(reference_sets(), weights, set_factor=set_factor, accept=accept))
    scores = set_log_scores(sets, weights, set_factor=set_factor, accept=accept)
    tolerance = 1e-9
    below = np.searchsorted(reference, scores - tolerance, side="left")
    up_to = np.searchsorted(reference, scores + tolerance, side="right")
    return (below + 0.5 * (up_to - below) + 0.5) / (reference.shape[0] + 1)


def sample_distinct_sets(
    weights: np.ndarray,
    count: int,
    rng: np.random.Generator,
    *,
    set_factor: SetFunction | None = None,
    max_factor: float = 1.0,
    accept: SetFunction | None = None,
    exclude: set[tuple[int, ...]] | None = None,
    batch: int = 256,
    max_candidates: int = 200_000,
) -> list[tuple[int, ...]]:
    """``count`` distinct sorted sets from the model (see module docstring); fewer only if
    ``max_candidates`` proposals are exhausted (practically never: there are 8,145,060 sets)."""
    chosen: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set(exclude or ())
    proposed = 0
    while len(chosen) < count and proposed < max_candidates:
        candidates = gumbel_top_k(weights, batch, rng)
        proposed += batch
        keep = np.ones(batch, dtype=bool)
        if accept is not None:
            keep &= accept(candidates).astype(bool)
        if set_factor is not None:
            keep &= rng.random(batch) < set_factor(candidates) / max_factor
        for row in candidates[keep]:
            key = tuple(int(x) for x in row)
            if key not in seen:
                seen.add(key)
                chosen.append(key)
                if len(chosen) == count:
                    break
    return chosen
