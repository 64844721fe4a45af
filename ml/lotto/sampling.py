"""Sampling distinct sets from per-number weights.

Six numbers without replacement with probability proportional to their weights (successive sampling, done
for many sets at once with the Gumbel-top-k trick), then, when the model has set-level factors (2호기) or a
hard filter (premium), accept–reject so that the sets follow
``P(set) ∝ successive-sampling probability × set factor × 1[passes filter]``.
The score of a set (``confidence_score``) is in :mod:`ml.lotto.confidence`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ml.lotto.draws import NUMBER_MAX, NUMBERS_PER_DRAW

SetFunction = Callable[[np.ndarray], np.ndarray]
"""Maps an (N, 6) array of sets to N values (factors >= 0, or booleans for filters)."""

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
