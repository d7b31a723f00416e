"""Seed-to-seed noise of a study, pure: how well any predictor could rank RMs, and whether a comparison is resolved.

- `split_half_reliability`: the noise ceiling of a ranking of RMs by an outcome. The seeds are split into two
  halves, the RMs ranked by their mean outcome over each half, and the two rankings compared (Spearman),
  averaged over every distinct split. A predictor cannot be expected to agree with the outcome ranking much
  better than the outcome agrees with itself.
- `resolved_difference`: whether a difference of two seed means exceeds twice its standard error (Welch);
  claims hold only on resolved differences and are "undetermined" otherwise.
- `seed_bootstrap`: resampled seed means of every point, for claims about correlations (claim (d)).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Sequence

import numpy as np
from scipy import stats

Z_MARGIN = 2.0  # standard errors a difference must exceed to count as resolved


def split_half_reliability(values: np.ndarray) -> dict[str, Any]:
    """Spearman between the RM rankings from two halves of the seeds, over every distinct split.

    Arguments:
        values: (n_rms, n_seeds) outcome of each RM under each seed (the same seeds in the same order).

    Returns:
        `{"mean", "min", "max", "n_splits"}`; halves have floor(S/2) and ceil(S/2) seeds (S = 3: 1 vs 2, three
        splits; S = 6: the ten 3 vs 3 splits), a split and its mirror counted once. None values with fewer than
        2 seeds or 3 RMs.

    >>> split_half_reliability(np.array([[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]]))["mean"]
    1.0
    """
    v = np.asarray(values, dtype=np.float64)
    n_rms, s = v.shape
    if s < 2 or n_rms < 3:
        return {"mean": None, "min": None, "max": None, "n_splits": 0}
    seen, rhos = set(), []
    for half in combinations(range(s), s // 2):
        other = tuple(i for i in range(s) if i not in half)
        if frozenset((half, other)) in seen:
            continue
        seen.add(frozenset((half, other)))
        a, b = v[:, list(half)].mean(axis=1), v[:, list(other)].mean(axis=1)
        rho = stats.spearmanr(a, b).statistic if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan
        rhos.append(float(rho))
    r = np.asarray(rhos)
    if np.isnan(r).all():
        return {"mean": None, "min": None, "max": None, "n_splits": len(rhos)}
    return {"mean": float(np.nanmean(r)), "min": float(np.nanmin(r)), "max": float(np.nanmax(r)),
            "n_splits": len(rhos)}


def resolved_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mean(a) - mean(b) over seeds, its standard error, and whether it exceeds `Z_MARGIN` standard errors.

    Returns:
        `{"difference", "se", "resolved"}`; with fewer than 2 seeds on either side there is no standard error:
        `se` is None and the difference is not resolved.

    >>> resolved_difference([1.0, 1.2, 1.1], [0.0, 0.1, 0.2])["resolved"]
    True
    >>> resolved_difference([1.0], [0.0])["resolved"]
    False
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return {"difference": diff, "se": None, "resolved": False}
    se = float(np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    return {"difference": diff, "se": se, "resolved": bool(abs(diff) > Z_MARGIN * se)}


def seed_bootstrap(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Resampled seed means: each point's seeds drawn with replacement, independently per point.

    Arguments:
        values: (n_points, n_seeds) outcomes.
        n_resamples, seed: the bootstrap's size and seed.

    Returns:
        (n_resamples, n_points) means over the resampled seeds.
    """
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.shape[1], size=(n_resamples, v.shape[0], v.shape[1]))  # (B, n_points, n_seeds)
    return np.take_along_axis(v[None], idx, axis=2).mean(axis=2)
