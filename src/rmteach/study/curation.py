"""The speed-up of a curated prompt set over the uniform one, pure (numpy only): reach steps on held-out gold curves.

A run's held-out gold curve is `eval_gold_reward` at its eval steps (`outcomes.eval_curve`), read between eval
steps by linear interpolation. The *target* is the uniform arm's seed-mean final held-out gold; `speedup_steps` is
the step at which the curated arm's seed-mean curve first reaches it, as a fraction of the steps: 0.5 means the
curated set got there in half the steps, 1.0 at the end, None never within the run. Its seed uncertainty is a
bootstrap: both arms' seeds resampled with replacement (independently), the target and the curve recomputed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def mean_curve(curves: Sequence[dict[str, list]]) -> tuple[np.ndarray, np.ndarray]:
    """The seed-mean held-out gold curve: (steps, gold) on the first curve's steps (others interpolated onto them).

    >>> mean_curve([{"step": [0, 2], "gold": [0.0, 1.0]}, {"step": [0, 2], "gold": [1.0, 2.0]}])[1].tolist()
    [0.5, 1.5]
    """
    steps = np.asarray(curves[0]["step"], dtype=np.float64)  # (n_evals,)
    golds = [np.interp(steps, np.asarray(c["step"], dtype=np.float64), np.asarray(c["gold"], dtype=np.float64))
             for c in curves]  # n_seeds x (n_evals,)
    return steps, np.mean(golds, axis=0)


def reach_step(steps: Sequence[float], values: Sequence[float], target: float) -> float | None:
    """The first step at which the curve (linear between its points) reaches `target`; None if it never does.

    A curve already at or above the target at its first step reaches it there.

    >>> reach_step([0, 10, 20], [0.0, 1.0, 2.0], 1.5), reach_step([0, 10], [0.0, 1.0], 2.0)
    (15.0, None)
    """
    s, v = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)  # (n_evals,)
    if v[0] >= target:
        return float(s[0])
    for i in range(1, len(v)):
        if v[i] >= target:  # v[i - 1] < target <= v[i]: the crossing lies in this segment
            return float(s[i - 1] + (target - v[i - 1]) / (v[i] - v[i - 1]) * (s[i] - s[i - 1]))
    return None


def speedup_fraction(uniform: Sequence[dict[str, list]], curated: Sequence[dict[str, list]]) -> float | None:
    """When the curated arm's seed-mean curve reaches the uniform arm's seed-mean final gold, as a fraction of the
    curated run's last eval step; None when it never does.

    >>> u = [{"step": [0, 4], "gold": [0.0, 1.0]}]
    >>> speedup_fraction(u, [{"step": [0, 2, 4], "gold": [0.0, 1.0, 1.5]}])
    0.5
    """
    target = float(np.mean([c["gold"][-1] for c in uniform]))
    steps, gold = mean_curve(curated)
    reach = reach_step(steps, gold, target)
    return None if reach is None else reach / float(steps[-1])


def speedup(uniform: Sequence[dict[str, list]], curated: Sequence[dict[str, list]], *, n_resamples: int,
            seed: int | Sequence[int]) -> dict[str, Any]:
    """`speedup_fraction` with its seed bootstrap.

    Arguments:
        uniform, curated: the two arms' held-out eval curves (`{"step": [...], "gold": [...]}`), one per seed.
        n_resamples: bootstrap resamples (0: no interval).
        seed: the bootstrap's seed.

    Returns:
        `speedup_steps` (the fraction, or None), `reach_step` (in steps), `steps` (the curated curve's last step),
        `target` (the uniform seed-mean final gold), `ci95` ([low, high] percentiles of the resampled fractions,
        an end None where more than 2.5% of the resamples never reach the target; None without resamples) and
        `reached_share` (the share of resamples that reach it).

    >>> u = [{"step": [0, 4], "gold": [0.0, 1.0]}] * 2
    >>> speedup(u, [{"step": [0, 4], "gold": [0.0, 2.0]}] * 2, n_resamples=10, seed=0)["ci95"]
    [0.5, 0.5]
    """
    steps = float(curated[0]["step"][-1])
    frac = speedup_fraction(uniform, curated)
    result: dict[str, Any] = {
        "speedup_steps": frac, "reach_step": None if frac is None else frac * steps, "steps": steps,
        "target": float(np.mean([c["gold"][-1] for c in uniform])), "ci95": None, "reached_share": None,
    }
    if n_resamples < 1:
        return result
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)  # (B,): the resampled fractions, inf where the target is never reached
    for b in range(n_resamples):
        u = [uniform[i] for i in rng.integers(0, len(uniform), len(uniform))]
        c = [curated[i] for i in rng.integers(0, len(curated), len(curated))]
        f = speedup_fraction(u, c)
        draws[b] = np.inf if f is None else f
    lo, hi = np.quantile(draws, [0.025, 0.975], method="inverted_cdf")  # actual draws: inf stays inf
    result["ci95"] = [None if np.isinf(x) else float(x) for x in (lo, hi)]
    result["reached_share"] = float(np.isfinite(draws).mean())
    return result
