"""The forecast's ranking, pure: per-prompt forecasts averaged into RM means, ordered, with how sure the order is.

Every forecast is a mean over prompts of per-prompt values, so one paired bootstrap over prompts (the same
resampled prompts for every RM) gives each mean's CI, the probability that an RM truly ranks above the next, the
RMs within noise of the best, and the ranking's `stability`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..core.metrics import correlation_rows


def bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(B, n) prompt indices drawn with replacement: one paired resampling shared by every RM and forecast."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def summarize(per_prompt: Mapping[str, np.ndarray], idx: np.ndarray) -> dict[str, dict[str, Any]]:
    """Mean over prompts and its 95% percentile-bootstrap CI (resampled prompts `idx`) of each forecast."""
    out = {}
    for name, v in per_prompt.items():
        means = v[idx].mean(axis=1)  # (B,)
        out[name] = {"value": float(v.mean()),
                     "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]}
    return out


def rank(per_rm: Mapping[str, np.ndarray], idx: np.ndarray, *, level: float = 0.95) -> dict[str, Any]:
    """RMs ordered by a per-prompt forecast's mean, with how sure the order is.

    Arguments:
        per_rm: `{rm name: (n,) per-prompt forecast}`, the same prompts for every RM.
        idx: (B, n) bootstrap prompt indices (`bootstrap_indices`).
        level: the probability above which an RM counts as truly below the best.

    Returns:
        `{"order": [{"name", "value", "p_above_next"}], "best", "within_noise_of_best", "stability"}`:
        `p_above_next` is the bootstrap probability that the RM's mean exceeds the next one's (None for the last);
        `within_noise_of_best` lists the others whose probability of being below the best is under `level`;
        `stability` is the mean Spearman, over the resamples, between the resampled means and the means
        (None under 3 RMs): an estimate of how closely an evaluate with unlimited prompts and samples would
        order these RMs (on the real world's evaluate it tracked that within 0.02 on average, README).

    >>> out = rank({"a": np.array([1.0, 1.0]), "b": np.array([0.0, 0.0])}, bootstrap_indices(2, 20, 0))
    >>> [(o["name"], o["p_above_next"]) for o in out["order"]], out["within_noise_of_best"]
    ([('a', 1.0), ('b', None)], [])
    """
    names = sorted(per_rm, key=lambda n: (-float(per_rm[n].mean()), n))
    boot = {n: per_rm[n][idx].mean(axis=1) for n in names}  # (B,) per RM
    order = []
    for i, n in enumerate(names):
        nxt = names[i + 1] if i + 1 < len(names) else None
        p = float(np.mean(boot[n] > boot[nxt])) if nxt is not None else None
        order.append({"name": n, "value": float(per_rm[n].mean()), "p_above_next": p})
    best = names[0] if names else None
    close = [n for n in names[1:] if float(np.mean(boot[best] > boot[n])) < level]
    means = {n: float(per_rm[n].mean()) for n in names}
    return {"order": order, "best": best, "within_noise_of_best": close, "stability": _stability(means, boot)}


STABLE = 0.9  # a ranking whose stability is below this is reported as too noisy to trust


def stability(per_rm: Mapping[str, np.ndarray], idx: np.ndarray) -> float | None:
    """Mean over bootstrap resamples of the Spearman between the RMs' resampled means and their means.

    Arguments:
        per_rm: `{rm name: (n,) per-prompt forecast}`; idx: (B, n) bootstrap prompt indices.

    Returns:
        The mean Spearman (resamples where it is undefined, all means tied, are left out), or None under 3 RMs.

    >>> stability({"a": np.array([3.0, 3.0]), "b": np.array([2.0, 2.0]), "c": np.array([1.0, 1.0])},
    ...           bootstrap_indices(2, 10, 0))
    1.0
    """
    return _stability({n: float(v.mean()) for n, v in per_rm.items()},
                      {n: v[idx].mean(axis=1) for n, v in per_rm.items()})


def _stability(means: Mapping[str, float], boot: Mapping[str, np.ndarray]) -> float | None:
    """`stability` from each RM's mean and its (B,) bootstrap means (as `rank` has them already)."""
    if len(means) < 3:
        return None
    names = sorted(means)
    m = np.array([means[n] for n in names])  # (R,)
    b = np.stack([boot[n] for n in names], axis=1)  # (B, R)
    rho = correlation_rows(b, np.broadcast_to(m, b.shape), "spearman")  # (B,)
    return None if np.isnan(rho).all() else float(np.nanmean(rho))


def forecast_sentence(ranking: Mapping[str, Any], primary: str, policy: str) -> str:
    """The summary's last line: the best teacher for this policy and which others are within noise of it."""
    best, close = ranking["best"], ranking["within_noise_of_best"]
    if best is None:
        return f"No reward model to rank for `{policy}`."
    if close is None:
        tail = " (a single estimate per RM: no bootstrap over prompts for this forecast)"
    else:
        tail = (f"; within noise of it (bootstrap over prompts, 95%): {', '.join(close)}" if close
                else "; every other RM is below it with 95% bootstrap probability")
    return f"Best teacher for `{policy}` by {primary}: {best}{tail}." + stability_note(ranking.get("stability"))


def stability_note(value: float | None) -> str:
    """The sentence after the verdict on the ranking's `stability`, with advice when it is under `STABLE`."""
    if value is None:
        return ""
    head = (f" Ranking stability {value:.2f} (mean Spearman between this order and its bootstrap resamples over "
            "prompts)")
    if value < STABLE:
        return head + (f": under {STABLE}, the order is mostly sampling noise; evaluate more prompts or more samples "
                       "per prompt (sampling.samples_per_prompt) before trusting it.")
    return head + "."
