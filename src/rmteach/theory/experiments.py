"""The three experiments of `rmteach theory` on the exact simulations of `theory.sim`, and the command.

1. `variance`: optimization time t_gamma against reward variance (Theorem 1, tabular and autoregressive).
2. `accuracy`: a perfectly accurate RM with low variance teaches slower than an inaccurate one (Theorem 2).
3. `policies`: two policies, two RMs, each RM fast for one policy and slow for the other (Theorem 3).
`run` writes theory.json, the plots and theory.html through `theory.report`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import UserError
from ..core import outdir
from ..core.outdir import check_out
from .report import write_outputs
from .sim import (
    AutoregressiveField,
    Flow,
    TabularField,
    ar_log_policy,
    gradient_flow,
    pairwise_accuracy,
    reward_variance,
    shrink_likely,
    softmax,
)

SCHEMA = "rmteach.theory/1"
EXPERIMENTS = ("variance", "accuracy", "policies", "all")


# ----------------------------------------------------------------------------------------------------------
# Problem instances and summaries


def tabular_instance(n_prompts: int, n_outputs: int, seed: int, spread: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Random initial logits N(0, spread^2) and ground-truth rewards U[-1, 1], independent of each other.

    Returns:
        (theta_ref, r_gold), both of shape (S, Y).
    """
    rng = np.random.default_rng(seed)
    return spread * rng.standard_normal((n_prompts, n_outputs)), rng.uniform(-1.0, 1.0, (n_prompts, n_outputs))


def ar_instance(n_prompts: int, vocab: int, seed: int, spread: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Random two-token policy (u, w ~ N(0, spread^2)) and ground-truth rewards U[-1, 1] per response.

    Returns:
        (params_ref of shape (1, S*V + V*V), r_gold of shape (S, V, V)).
    """
    rng = np.random.default_rng(seed)
    params = spread * rng.standard_normal((1, n_prompts * vocab + vocab * vocab))
    return params, rng.uniform(-1.0, 1.0, (n_prompts, vocab, vocab))


def _finite(x: np.ndarray) -> list[float | None]:
    """A JSON-able list: inf and nan become None."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(x, dtype=np.float64).ravel()]


def loglog_fit(variance: np.ndarray, t_gamma: np.ndarray) -> dict:
    """Least-squares slope of log t_gamma on log variance, and the constants of the theory's lower bounds.

    Returns:
        {"slope", "intercept"} of log t = intercept + slope * log Var, and "c_half", "c_third": the largest c
        with t_gamma >= c * Var^(-1/2) (resp. -1/3) at every point, the envelope drawn in the plot; None
        where fewer than two runs reached gamma.
    """
    ok = np.isfinite(t_gamma) & (variance > 0)
    if ok.sum() < 2:  # nothing to fit: every field but the count is undefined
        return {"slope": None, "intercept": None, "n_points": int(ok.sum()), "c_half": None, "c_third": None}
    slope, intercept = np.polyfit(np.log(variance[ok]), np.log(t_gamma[ok]), 1)
    return {
        "slope": float(slope), "intercept": float(intercept), "n_points": int(ok.sum()),
        "c_half": float(np.min(t_gamma[ok] * variance[ok] ** 0.5)),
        "c_third": float(np.min(t_gamma[ok] * variance[ok] ** (1 / 3))),
    }


def _variance_checks(variance: np.ndarray, t_gamma: np.ndarray) -> dict:
    """The statement of experiment 1: t_gamma falls as variance grows, with a log-log slope <= -1/3."""
    order = np.argsort(variance)
    t = t_gamma[order]
    slope = loglog_fit(variance, t_gamma)["slope"]
    return {"t_gamma_decreases": bool(np.all(np.isfinite(t)) and np.all(np.diff(t) < 0)),
            "slope_at_most_minus_third": slope is not None and slope <= -1 / 3}


def _curves(flow: Flow, n_points: int = 200) -> list[dict]:
    """Each run's (t, gold) trajectory thinned to about `n_points` log-spaced steps, JSON-able."""
    n = len(flow.t)
    idx = np.unique(np.concatenate([[0], np.geomspace(1, n - 1, n_points).round().astype(int)]))
    return [{"t": _finite(flow.t[idx, b]), "gold": _finite(flow.gold[idx, b])} for b in range(flow.t.shape[1])]


# ----------------------------------------------------------------------------------------------------------
# Experiments


ALPHAS = tuple(float(a) for a in np.geomspace(1e-3, 1.0, 10))


def variance_tabular(seed: int = 0, n_prompts: int = 16, n_outputs: int = 200, alphas=ALPHAS, gamma: float = 0.1,
                     mass: float = 0.99, lam: float = 0.0, step: float = 0.02, adaptive: bool = True) -> dict:
    """Experiment 1, tabular: t_gamma of perfectly accurate RMs whose variance is swept by `shrink_likely`.

    Returns:
        A JSON-able dict: per RM its shrink factor, reward variance, accuracy and t_gamma; the log-log fit.
    """
    theta_ref, gold = tabular_instance(n_prompts, n_outputs, seed)
    pi0 = softmax(theta_ref)  # (S, Y)
    rms = np.stack([shrink_likely(gold, pi0, a, mass) for a in alphas])  # (B, S, Y), one RM per alpha
    field = TabularField(theta_ref, rms, gold, lam)
    flow = gradient_flow(np.broadcast_to(theta_ref, rms.shape), field, gamma, step, adaptive=adaptive)
    variance = reward_variance(pi0, rms).mean(axis=-1)  # (B,)
    return {
        "policy": "tabular", "n_prompts": n_prompts, "n_outputs": n_outputs, "gamma": gamma, "lam": lam,
        "mass": mass, "step": step, "adaptive": adaptive, "alphas": list(alphas),
        "variance": _finite(variance), "t_gamma": _finite(flow.t_gamma),
        "accuracy": _finite([pairwise_accuracy(r, gold).mean() for r in rms]),
        "fit": loglog_fit(variance, flow.t_gamma), "theory_slope": -0.5,
        "checks": _variance_checks(variance, flow.t_gamma),
    }


def variance_autoregressive(seed: int = 0, n_prompts: int = 8, vocab: int = 10, alphas=ALPHAS, gamma: float = 0.1,
                            mass: float = 0.99, lam: float = 0.0, step: float = 0.02) -> dict:
    """Experiment 1, two-token autoregressive policies (|Y| = V^2 responses, shared parameters).

    Returns:
        A JSON-able dict like `variance_tabular`'s.
    """
    S, V = n_prompts, vocab
    params_ref, gold = ar_instance(S, V, seed)
    pi0 = np.exp(ar_log_policy(params_ref, S, V))[0].reshape(S, V * V)  # (S, V*V) distribution over responses
    flat_gold = gold.reshape(S, V * V)
    rms = np.stack([shrink_likely(flat_gold, pi0, a, mass) for a in alphas])  # (B, S, V*V)
    B = len(alphas)
    field = AutoregressiveField(np.repeat(params_ref, B, axis=0), rms.reshape(B, S, V, V), gold, S, V, lam)
    flow = gradient_flow(np.repeat(params_ref, B, axis=0), field, gamma, step)
    variance = reward_variance(pi0, rms).mean(axis=-1)
    return {
        "policy": "autoregressive", "n_prompts": S, "vocab": V, "n_outputs": V * V, "gamma": gamma, "lam": lam,
        "mass": mass, "step": step, "alphas": list(alphas),
        "variance": _finite(variance), "t_gamma": _finite(flow.t_gamma),
        "accuracy": _finite([pairwise_accuracy(r, flat_gold).mean() for r in rms]),
        "fit": loglog_fit(variance, flow.t_gamma), "theory_slope": -1 / 3,
        "checks": _variance_checks(variance, flow.t_gamma),
    }


def experiment_variance(seed: int = 0) -> dict:
    """Experiment 1 (Theorem 1, Proposition 3): lower reward variance, slower rise of the gold reward.

    Each sweep is run again with half the step; "half_step_max_rel_change" says how far t_gamma moved.
    """
    out = {}
    for name, sweep in (("tabular", variance_tabular), ("autoregressive", variance_autoregressive)):
        res = sweep(seed=seed)
        half = sweep(seed=seed, step=res["step"] / 2)
        change = np.abs(np.array(res["t_gamma"], dtype=float) / np.array(half["t_gamma"], dtype=float) - 1)
        out[name] = {**res, "half_step_max_rel_change": _finite([np.max(change)])[0]}
    return out


def experiment_accuracy(seed: int = 0, n_prompts: int = 8, n_outputs: int = 100, gamma: float = 0.1,
                        alpha: float = 0.01, mass: float = 0.99, lam: float = 0.0, step: float = 0.02) -> dict:
    """Experiment 2 (Theorem 2): a perfectly accurate, low-variance RM against an inaccurate, separating one.

    The accurate RM is `shrink_likely(gold, pi0, alpha)`. The inaccurate one gives +1 to y_gamma, the most
    likely output whose gold reward beats the start by 2 gamma, and -1 to every other output, so it ranks only
    the pairs that contain y_gamma (accuracy <= 2/|Y| over uniform pairs). The ground truth runs as a third RM.

    Returns:
        A JSON-able dict: per RM accuracy, on-policy accuracy, variance, t_gamma and gold curve; the ratio.
    """
    theta_ref, gold = tabular_instance(n_prompts, n_outputs, seed)
    pi0 = softmax(theta_ref)
    start = (pi0 * gold).sum(axis=-1, keepdims=True)  # (S, 1)
    y_gamma = np.where(gold > start + 2 * gamma, pi0, -1.0).argmax(axis=-1)  # (S,)
    separating = np.where(np.arange(n_outputs) == y_gamma[:, None], 1.0, -1.0)  # (S, Y)
    names = ("ground truth", "perfectly accurate, low variance", "inaccurate, separates y_gamma")
    rms = np.stack([gold, shrink_likely(gold, pi0, alpha, mass), separating])  # (3, S, Y)
    flow = gradient_flow(np.broadcast_to(theta_ref, rms.shape), TabularField(theta_ref, rms, gold, lam), gamma,
                         step, overshoot=3.0, sync=True)
    t = flow.t_gamma
    curves = _curves(flow)
    rows = [
        {"name": n, "accuracy": float(pairwise_accuracy(r, gold).mean()),
         "onpolicy_accuracy": float(pairwise_accuracy(r, gold, pi0).mean()),
         "variance": float(reward_variance(pi0, r).mean()), "t_gamma": _finite(t[i])[0], "curve": curves[i]}
        for i, (n, r) in enumerate(zip(names, rms))
    ]
    return {
        "policy": "tabular", "n_prompts": n_prompts, "n_outputs": n_outputs, "gamma": gamma, "alpha": alpha,
        "mass": mass, "lam": lam, "step": step, "start_gold": float(start.mean()),
        "pi0_y_gamma": _finite(np.take_along_axis(pi0, y_gamma[:, None], axis=-1)), "rms": rows,
        "ratio": _finite([t[1] / t[2]])[0],
        "checks": {"accurate_at_least_10x_slower": bool(t[1] >= 10.0 * t[2])},
    }


def experiment_policies(seed: int = 0, n_prompts: int = 4, n_outputs: int = 20, p_high: float = 0.3,
                        p_low: float = 0.003, gamma: float = 0.1, lam: float = 0.0, step: float = 0.02) -> dict:
    """Experiment 3 (Theorem 3): two mirror-image policies, two RMs, each RM fast for one policy only.

    Outputs y1 = 0 and y2 = 1 have gold reward 1, the others U[-1, 0]. Policy A puts p_high on y1 and p_low on
    y2, policy B the reverse; the rest of the mass is spread identically, so both start at the same gold
    reward. RM k rewards y_k with 1 and everything else with 0.

    Returns:
        A JSON-able dict with the 2x2 tables of t_gamma and reward variance, curves, and whether they flip.
    """
    rng = np.random.default_rng(seed)
    gold = np.concatenate([np.ones((n_prompts, 2)), rng.uniform(-1.0, 0.0, (n_prompts, n_outputs - 2))], axis=1)
    rest = (1.0 - p_high - p_low) * softmax(rng.standard_normal((n_prompts, n_outputs - 2)))
    pi_a = np.concatenate([np.full((n_prompts, 1), p_high), np.full((n_prompts, 1), p_low), rest], axis=1)
    pi_b = pi_a[:, [1, 0] + list(range(2, n_outputs))]  # the mirror image: y1 and y2 swapped
    rm = np.eye(n_outputs)[[0, 1]][:, None, :].repeat(n_prompts, axis=1)  # (2, S, Y): RM1, RM2
    theta_ref = np.log(np.stack([pi_a, pi_a, pi_b, pi_b]))  # (4, S, Y) runs: (A,RM1) (A,RM2) (B,RM1) (B,RM2)
    rewards = np.stack([rm[0], rm[1], rm[0], rm[1]])
    flow = gradient_flow(theta_ref, TabularField(theta_ref, rewards, gold, lam), gamma, step, overshoot=2.0, sync=True)
    t = flow.t_gamma.reshape(2, 2)  # [policy, rm]
    var = reward_variance(np.exp(theta_ref), rewards).mean(axis=-1).reshape(2, 2)
    return {
        "policy": "tabular", "n_prompts": n_prompts, "n_outputs": n_outputs, "p_high": p_high, "p_low": p_low,
        "gamma": gamma, "lam": lam, "step": step,
        "start_gold": _finite([(pi_a * gold).sum(-1).mean(), (pi_b * gold).sum(-1).mean()]),
        "policies": ["A", "B"], "rms": ["RM1 (rewards y1)", "RM2 (rewards y2)"],
        "t_gamma": [_finite(row) for row in t], "variance": [_finite(row) for row in var],
        "curves": _curves(flow),
        "checks": {"flip": bool(t[0, 0] < t[0, 1] and t[1, 1] < t[1, 0])},
    }


RUNNERS = {"variance": experiment_variance, "accuracy": experiment_accuracy, "policies": experiment_policies}


def run(out: Path, experiment: str = "all", seed: int = 0) -> dict:
    """`rmteach theory`: run one experiment or all, write theory.json, one PNG each and theory.html into `out`.

    Arguments:
        out: the output folder (created if missing; an earlier theory output there is replaced whole, a folder holding anything else is refused).
        experiment: one of `EXPERIMENTS`.
        seed: seed of the random instances (initial policies, ground-truth rewards).

    Returns:
        The dict written to theory.json.
    """
    if experiment not in EXPERIMENTS:
        raise UserError(f"--experiment must be one of {', '.join(EXPERIMENTS)}; got {experiment!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed must be a non-negative integer; got {seed!r}")
    check_out(out, beside=True)
    why = outdir.foreign(Path(out), "theory") if Path(out).is_dir() else None
    if why is not None:  # an earlier theory output is replaced whole; a folder of anything else is never touched
        raise UserError(why)
    names = EXPERIMENTS[:-1] if experiment == "all" else (experiment,)
    result = {"schema": SCHEMA, "experiment": experiment, "seed": int(seed),
              "experiments": {name: RUNNERS[name](seed=int(seed)) for name in names}}
    with outdir.staged(out, "theory") as stage:
        write_outputs(result, stage)
    return result
