"""Pure metric functions on arrays: normalization, reward variance, accuracies, CIs, correlations.

No model code here. Shapes: on-policy rewards are `(n_prompts, k)` arrays, one row per prompt, one column
per sampled response. Definitions follow Razin et al. (2025), "What Makes a Reward Model a Good Teacher?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LOW_VARIANCE_THRESHOLD = 0.01


@dataclass(frozen=True)
class Normalization:
    """Shift and scale of one RM, computed over all (prompt, response) rewards of the initial policy."""

    mean: float
    std: float  # ddof=1; 0.0 when all rewards are identical

    def apply(self, rewards: np.ndarray) -> np.ndarray:
        """Return (r - mean) / std, or all zeros when std is 0 (a constant RM carries no signal)."""
        r = np.asarray(rewards, dtype=np.float64)
        if self.std == 0.0:
            return np.zeros_like(r)
        return (r - self.mean) / self.std


def fit_normalization(rewards: np.ndarray) -> Normalization:
    """Mean and sample std (ddof=1) over every entry of `rewards`.

    >>> fit_normalization(np.array([[1.0, 3.0], [5.0, 7.0]]))
    Normalization(mean=4.0, std=2.581988897471611)
    """
    r = np.asarray(rewards, dtype=np.float64).ravel()
    if r.size < 2:
        raise ValueError("normalization needs at least 2 rewards")
    std = float(np.std(r, ddof=1))
    # Identical rewards can give a std of a few ulps instead of 0; treat that as constant.
    if std <= 1e-12 * max(1.0, float(np.max(np.abs(r)))):
        std = 0.0
    return Normalization(mean=float(np.mean(r)), std=std)


def per_prompt_variance(z: np.ndarray) -> np.ndarray:
    """Unbiased within-prompt variance (ddof=1) of rewards `z` of shape (n_prompts, k) -> (n_prompts,).

    This estimates Var_{y ~ pi(.|x)} z(x, y) from k i.i.d. samples; it equals the mean over the k(k-1)/2
    pairs of (z_i - z_j)^2 / 2, the paper's form of the variance.

    >>> per_prompt_variance(np.array([[0.0, 2.0], [1.0, 1.0]]))
    array([2., 0.])
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"expected shape (n_prompts, k>=2), got {z.shape}")
    return np.var(z, axis=1, ddof=1)


def bootstrap_mean_ci(
    values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (resampling entries with replacement).

    >>> bootstrap_mean_ci(np.array([1.0, 1.0, 1.0]), n_resamples=50)
    (1.0, 1.0)
    """
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))  # (B, n)
    means = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def variance_summary(
    z: np.ndarray, *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, float | list[float]]:
    """Summary of per-prompt variance of normalized rewards `z` (n_prompts, k): the report's block.

    Returns:
        `mean` (the headline), `median`, `p10`, `p90`, `frac_below_0.01`, `ci95` (bootstrap over prompts).
    """
    v = per_prompt_variance(z)
    lo, hi = bootstrap_mean_ci(v, n_resamples=n_resamples, seed=seed)
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p10": float(np.quantile(v, 0.10)),
        "p90": float(np.quantile(v, 0.90)),
        "frac_below_0.01": float(np.mean(v < LOW_VARIANCE_THRESHOLD)),
        "ci95": [lo, hi],
    }


def zero_std(r: np.ndarray) -> np.ndarray:
    """Per prompt, whether its K raw rewards (n_prompts, k) are all equal: (n_prompts,) bools.

    >>> zero_std(np.array([[1.0, 1.0], [1.0, 2.0]])).tolist()
    [True, False]
    """
    return np.ptp(np.asarray(r, dtype=np.float64), axis=1) == 0.0


def frac_zero_std(r: np.ndarray) -> float:
    """Share of prompts whose K raw rewards are all equal (TRL's `frac_reward_zero_std`): no learning signal there.

    >>> frac_zero_std(np.array([[1.0, 1.0], [1.0, 2.0]]))
    0.5
    """
    return float(np.mean(zero_std(r)))


def concentration(values: np.ndarray) -> dict[str, float | int | None]:
    """How much of a non-negative per-prompt total (e.g. `per_prompt_variance`) sits in how few prompts.

    The top q of n prompts are the ceil(q * n) largest values (at least one).

    Returns:
        `top_10pct_share`, `top_25pct_share` (their share of the sum), `prompts_for_half` (the fewest prompts
        whose values reach half the sum) and `num_prompts`; the first three are None when the sum is 0.

    >>> concentration(np.array([6.0, 2.0, 1.0, 1.0]))
    {'top_10pct_share': 0.6, 'top_25pct_share': 0.6, 'prompts_for_half': 1, 'num_prompts': 4}
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())[::-1]  # (n,), largest first
    cum = np.cumsum(v)  # (n,): the share of the top 1, 2, ... prompts, times the total
    n, total = v.size, float(cum[-1]) if v.size else 0.0
    out: dict[str, float | int | None] = {"top_10pct_share": None, "top_25pct_share": None,
                                         "prompts_for_half": None, "num_prompts": int(n)}
    if n == 0 or total <= 0.0:
        return out  # no signal anywhere: nothing to concentrate
    for pct in (10, 25):  # ceil(pct * n / 100) in integers: 0.1 * 30 is not 3 in floats
        out[f"top_{pct}pct_share"] = float(cum[max(1, -(-pct * n // 100)) - 1] / total)
    out["prompts_for_half"] = int(np.searchsorted(cum, 0.5 * total) + 1)
    return out


def pairwise_sign_agreement(r: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per-prompt fraction of the k(k-1)/2 sample pairs where sign(r_i - r_j) == sign(g_i - g_j).

    sign(0) = 0, so a tie in one RM but not the other counts as disagreement, and a tie in both as
    agreement (the paper's definition).

    Arguments:
        r: proxy rewards, (n_prompts, k).
        g: ground-truth rewards, (n_prompts, k).

    Returns:
        (n_prompts,) agreement fractions.

    >>> pairwise_sign_agreement(np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 3.0, 2.0]]))
    array([0.66666667])
    """
    r = np.asarray(r, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if r.shape != g.shape or r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"expected two arrays of the same shape (n_prompts, k>=2), got {r.shape}, {g.shape}")
    i, j = np.triu_indices(r.shape[1], k=1)  # all unordered pairs
    agree = np.sign(r[:, i] - r[:, j]) == np.sign(g[:, i] - g[:, j])  # (n_prompts, n_pairs)
    return agree.mean(axis=1)


def onpolicy_accuracy(r: np.ndarray, g: np.ndarray) -> float:
    """Mean over prompts of `pairwise_sign_agreement(r, g)`."""
    return float(pairwise_sign_agreement(r, g).mean())


def offpolicy_accuracy(r_chosen: np.ndarray, r_rejected: np.ndarray) -> float:
    """Fraction of preference pairs with r(chosen) > r(rejected); ties count as disagreement.

    >>> offpolicy_accuracy(np.array([2.0, 1.0, 0.0]), np.array([1.0, 1.0, 3.0]))
    0.3333333333333333
    """
    c = np.asarray(r_chosen, dtype=np.float64)
    rj = np.asarray(r_rejected, dtype=np.float64)
    return float(np.mean(c > rj))


def offpolicy_accuracy_vs(
    r_chosen: np.ndarray, r_rejected: np.ndarray, g_chosen: np.ndarray, g_rejected: np.ndarray
) -> float:
    """Fraction of pairs where sign(r_c - r_r) equals the reference ordering sign(g_c - g_r), sign(0)=0."""
    r = np.sign(np.asarray(r_chosen, float) - np.asarray(r_rejected, float))
    g = np.sign(np.asarray(g_chosen, float) - np.asarray(g_rejected, float))
    return float(np.mean(r == g))


# ----------------------------------------------------------------------------------------------------------
# Correlations across reward models (for `study`)

CORRELATIONS = ("pearson", "spearman", "kendall")


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of (B, n) arrays; NaN where a row is (numerically) constant."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    sxx, syy = (xc * xc).sum(axis=1), (yc * yc).sum(axis=1)
    # A row whose spread is rounding noise relative to its values counts as constant.
    tiny = 1e-24 * np.maximum(1.0, (x * x).sum(axis=1)) * np.maximum(1.0, (y * y).sum(axis=1))
    ok = sxx * syy > tiny
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / np.sqrt(sxx * syy)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair of (B, n) arrays: sum sx*sy / sqrt(sum sx^2 * sum sy^2) over i<j."""
    i, j = np.triu_indices(x.shape[1], k=1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])  # (B, n_pairs)
    den = np.sqrt((sx * sx).sum(axis=1) * (sy * sy).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (sx * sy).sum(axis=1) / den, np.nan)


def correlation_rows(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Correlation of each row of `x` with the same row of `y`, both (B, n); NaN when undefined.

    Spearman is Pearson on average ranks; Kendall is tau-b (ties handled as scipy does).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    if x.shape[1] < 3:
        return np.full(x.shape[0], np.nan)
    if method == "pearson":
        return _pearson_rows(x, y)
    if method == "spearman":
        return _pearson_rows(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))
    if method == "kendall":
        return _kendall_rows(x, y)
    raise ValueError(f"unknown correlation {method!r} (allowed: {', '.join(CORRELATIONS)})")


def correlation(x: np.ndarray, y: np.ndarray, method: str) -> float:
    """Pearson, Spearman or Kendall correlation; NaN when either input is constant or n < 3.

    >>> correlation(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0]), "spearman")
    1.0
    """
    return float(correlation_rows(x, y, method)[0])


def correlation_with_ci(
    x: np.ndarray, y: np.ndarray, method: str, *, n_resamples: int = 1000, seed: int = 0
) -> dict[str, float | list[float] | None]:
    """Correlation and a percentile bootstrap 95% CI over items (resampled pairs; degenerate draws skipped).

    Returns:
        `{"value": r, "ci95": [lo, hi] or None, "n": n}`; values are None when undefined (NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    value = correlation(x, y, method)
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_resamples, x.size))  # (B, n)
    boots = correlation_rows(x[idx], y[idx], method)
    boots = boots[~np.isnan(boots)]
    ci = [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))] if boots.size >= 10 else None
    return {"value": None if math.isnan(value) else value, "ci95": ci, "n": int(x.size)}


def minmax(values: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1] (all 0.5 when constant): used to average variance and accuracy as in the paper."""
    v = np.asarray(values, dtype=np.float64)
    span = np.ptp(v)
    return np.full_like(v, 0.5) if span == 0 else (v - v.min()) / span
