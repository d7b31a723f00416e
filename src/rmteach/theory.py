"""Exact gradient-flow simulations of the three theorems of Razin et al. (2025) on softmax policies.

The objective of the paper, with prompts x uniform over a set S of |S| prompts:

    phi(theta) = E_x [ E_{y ~ pi_theta(.|x)} r(x, y) - lam * KL(pi_theta(.|x) || pi_ref(.|x)) ]

is maximized by gradient flow from theta(0) = theta_ref, integrated with explicit Euler steps on exact
gradients (no sampling). Time is flow time of this mean-over-prompts objective, so independent prompts
each move |S| times slower than they would alone. t_gamma is the first time the expected ground-truth
reward E_x E_{y~pi} r_G(x, y) rises by gamma above its start (linearly interpolated between steps).

Two policy classes:
  tabular         pi(.|x) = softmax(theta_x), theta of shape (S, Y): the setting of Theorems 2, 3, Prop. 3.
  autoregressive  two-token responses y = (a, b) over a vocabulary of V tokens; step 1 logits u_x, step 2
                  logits u_x + w_a: u_x is shared by both steps, w by all prompts (not tabular: Theorem 1).

Step size: `step` is either a fixed time step (`adaptive=False`), or the largest change of any logit in one
step (`adaptive=True`, the default), which keeps Euler's relative error the same whether the reward
variance is 1e-6 or 1; runs with tiny gradients then take proportionally longer time steps.

Plots, HTML and JSON writing live in `theory_report.py`; this module is numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UserError
from .theory_report import theory_html_section, write_outputs

SCHEMA = "rmteach.theory/1"
EXPERIMENTS = ("variance", "accuracy", "policies", "all")

__all__ = [
    "EXPERIMENTS", "SCHEMA", "AutoregressiveField", "Flow", "TabularField", "experiment_accuracy",
    "experiment_policies", "experiment_variance", "gradient_flow", "pairwise_accuracy", "reward_variance", "run",
    "shrink_likely", "tabular_gradient", "tabular_objective", "theory_html_section", "variance_autoregressive",
    "variance_tabular",
]


# ----------------------------------------------------------------------------------------------------------
# Tabular policies: metrics and exact gradients


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def reward_variance(pi: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """Exact Var_{y ~ pi(.|x)} r(x, y) per prompt.

    Arguments:
        pi: policy probabilities, shape (..., S, Y).
        reward: rewards, broadcastable to `pi`.

    Returns:
        Variances of shape (..., S); the paper's reward variance is their mean over prompts.

    >>> reward_variance(np.array([[0.5, 0.5]]), np.array([[0.0, 2.0]]))
    array([1.])
    """
    mean = (pi * reward).sum(axis=-1, keepdims=True)
    return (pi * (reward - mean) ** 2).sum(axis=-1)


def pairwise_accuracy(r_rm: np.ndarray, r_gold: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Exact accuracy per prompt over unordered output pairs: 1[sign(r_rm diff) == sign(r_gold diff)].

    Pairs (y, y') with y != y' are weighted by weights(y) * weights(y') (uniform when None; pass the initial
    policy for the on-policy accuracy). sign(0) = 0, as in the paper: a tie in one reward only is an error.

    Memory is O(S * Y^2): meant for the small tabular problems here.

    Arguments:
        r_rm: RM rewards, shape (S, Y).
        r_gold: ground-truth rewards, shape (S, Y).
        weights: optional per-output weights, shape (S, Y).

    Returns:
        Accuracies of shape (S,).

    >>> float(pairwise_accuracy(np.array([[1.0, 1.0, 2.0]]), np.array([[0.0, 1.0, 2.0]]))[0])
    0.6666666666666666
    """
    agree = np.sign(r_rm[:, :, None] - r_rm[:, None, :]) == np.sign(r_gold[:, :, None] - r_gold[:, None, :])
    w = np.ones_like(r_gold) if weights is None else weights  # (S, Y)
    pair_w = w[:, :, None] * w[:, None, :] * (1.0 - np.eye(w.shape[-1]))  # (S, Y, Y), zero on the diagonal
    return (pair_w * agree).sum(axis=(1, 2)) / pair_w.sum(axis=(1, 2))


def shrink_likely(r_gold: np.ndarray, pi0: np.ndarray, alpha: float, mass: float = 0.9) -> np.ndarray:
    """A perfectly accurate RM that squeezes the rewards of likely outputs towards their mean.

    Per prompt, H is the smallest set of most likely outputs holding `mass` of pi0, and [lo, hi] the range of
    their ground-truth rewards. Rewards inside [lo, hi] are shrunk by `alpha` towards c = E_pi0 r_G (clipped
    into [lo, hi]); rewards outside keep their distance to the band's edges. The map is strictly increasing
    for alpha > 0, so the ranking (accuracy 1) is kept, and rewards stay within the range of r_gold.

    Arguments:
        r_gold: ground-truth rewards, shape (S, Y).
        pi0: initial policy, shape (S, Y).
        alpha: shrink factor in (0, 1]; 1 returns r_gold.
        mass: probability mass of the outputs that count as likely.

    Returns:
        RM rewards of shape (S, Y).
    """
    p_sorted = -np.sort(-pi0, axis=-1)  # (S, Y), descending
    # H's last member is the first output at which the cumulative mass reaches `mass`.
    last = np.argmax(np.cumsum(p_sorted, axis=-1) >= mass - 1e-12, axis=-1)  # (S,)
    tau = np.take_along_axis(p_sorted, last[:, None], axis=-1)  # (S, 1)
    likely = pi0 >= tau
    lo = np.where(likely, r_gold, np.inf).min(axis=-1, keepdims=True)  # (S, 1)
    hi = np.where(likely, r_gold, -np.inf).max(axis=-1, keepdims=True)
    c = np.clip((pi0 * r_gold).sum(axis=-1, keepdims=True), lo, hi)
    inside = np.clip(r_gold, lo, hi)
    return c + alpha * (inside - c) + (r_gold - inside)


def tabular_objective(theta: np.ndarray, theta_ref: np.ndarray, reward: np.ndarray, lam: float = 0.0) -> np.ndarray:
    """phi(theta) = mean over prompts of E_pi r - lam * KL(pi || pi_ref); shapes (..., S, Y) -> (...)."""
    log_pi, log_ref = log_softmax(theta), log_softmax(theta_ref)
    pi = np.exp(log_pi)
    per_prompt = (pi * reward).sum(axis=-1) - lam * (pi * (log_pi - log_ref)).sum(axis=-1)  # (..., S)
    return per_prompt.mean(axis=-1)


class TabularField:
    """theta -> (grad phi(theta), expected ground-truth reward): the hot loop of every tabular run.

    The gradient of E_pi[r] - lam * KL(pi || pi_ref) in the logits is pi * (a - E_pi a) with the "advantage"
    a = r - lam * log(pi / pi_ref) (the log-ratio's own derivative has zero mean under pi). The mean over
    prompts divides it by |S|. Two (B, S, Y) buffers are reused across calls: the returned gradient is
    overwritten by the next call.

    Arguments:
        theta_ref: reference (= initial) logits, shape (B, S, Y) or (S, Y); B independent runs.
        reward: RM rewards, broadcastable to (B, S, Y).
        gold: ground-truth rewards, broadcastable to (B, S, Y).
        lam: KL coefficient.
    """

    def __init__(self, theta_ref: np.ndarray, reward: np.ndarray, gold: np.ndarray, lam: float = 0.0):
        shape = np.broadcast_shapes(np.shape(theta_ref), np.shape(reward), np.shape(gold))
        if len(shape) == 2:
            shape = (1,) + shape
        self.shape = shape  # (B, S, Y)
        bcast = lambda a: np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype=np.float64), shape))
        self.reward, self.gold, self.lam = bcast(reward), bcast(gold), float(lam)
        self.reward_ref = self.reward + self.lam * bcast(log_softmax(np.asarray(theta_ref, dtype=np.float64)))
        self._p = np.empty(shape)  # pi / |S|
        self._a = np.empty(shape)  # advantage, then gradient

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        S = self.shape[1]
        p, a = self._p, self._a  # (B, S, Y) each
        # 1. p = softmax(theta) / |S|
        np.subtract(theta, theta.max(axis=-1, keepdims=True), out=a)
        np.exp(a, out=p)
        norm = p.sum(axis=-1, keepdims=True)  # (B, S, 1)
        np.divide(p, norm * S, out=p)
        # 2. advantage a = r - lam * (log pi - log pi_ref), up to a per-prompt constant (the baseline removes it):
        #    log pi = theta - (max + log norm), so a = (r + lam * log pi_ref) - lam * theta + const
        adv = self.reward
        if self.lam:
            np.multiply(theta, -self.lam, out=a)
            adv = np.add(a, self.reward_ref, out=a)
        # 3. gradient = pi * (a - E_pi a) / |S|
        baseline = np.matmul(p[..., None, :], adv[..., :, None])[..., 0] * S  # (B, S, 1); matmul beats einsum
        np.subtract(adv, baseline, out=a)
        np.multiply(a, p, out=a)
        gold = np.matmul(p[..., None, :], self.gold[..., :, None]).sum(axis=(1, 2, 3))  # (B,) E_x E_pi r_G
        return a, gold


def tabular_gradient(theta: np.ndarray, theta_ref: np.ndarray, reward: np.ndarray, lam: float = 0.0) -> np.ndarray:
    """Exact gradient of `tabular_objective` in theta, shape (B, S, Y) or (S, Y) like `theta`."""
    theta = np.asarray(theta, dtype=np.float64)
    field = TabularField(np.broadcast_to(theta_ref, theta.shape), reward, reward, lam)
    grad, _ = field(theta if theta.ndim == 3 else theta[None])
    return grad.reshape(theta.shape).copy()


# ----------------------------------------------------------------------------------------------------------
# Two-token autoregressive policies: pi(a, b | x) = softmax(u_x)[a] * softmax(u_x + w_a)[b]


def ar_log_policy(params: np.ndarray, n_prompts: int, vocab: int) -> np.ndarray:
    """Log-probabilities of every two-token response.

    Arguments:
        params: shape (B, S*V + V*V): per run, u (S, V) then w (V, V), flattened.
        n_prompts: S.
        vocab: V.

    Returns:
        log pi(a, b | x) of shape (B, S, V, V).
    """
    S, V = n_prompts, vocab
    u = params[:, : S * V].reshape(-1, S, V)  # (B, S, V) step-1 logits, reused by step 2
    w = params[:, S * V :].reshape(-1, V, V)  # (B, V, V) step-2 offsets by first token, shared by prompts
    logp1 = log_softmax(u)  # (B, S, V)
    logp2 = log_softmax(u[:, :, None, :] + w[:, None, :, :])  # (B, S, V, V): [x, a, b]
    return logp1[..., None] + logp2


def ar_objective(params: np.ndarray, params_ref: np.ndarray, reward: np.ndarray, n_prompts: int, vocab: int,
                 lam: float = 0.0) -> np.ndarray:
    """phi for two-token policies: mean over prompts of E_pi r - lam * KL(pi || pi_ref); returns (B,)."""
    log_pi = ar_log_policy(params, n_prompts, vocab)
    log_ref = ar_log_policy(params_ref, n_prompts, vocab)
    pi = np.exp(log_pi)
    return ((pi * reward).sum(axis=(-2, -1)) - lam * (pi * (log_pi - log_ref)).sum(axis=(-2, -1))).mean(axis=-1)


class AutoregressiveField:
    """params -> (grad phi(params), expected ground-truth reward) for two-token policies.

    With the advantage a = r - lam * log(pi / pi_ref) and q(a) = E_{b ~ pi(.|x,a)} a(a, b), the gradient is
    p1 * (q - E_p1 q) in the step-1 logits and pi(a, b) * (a(a, b) - q(a)) in the step-2 logits; u collects
    both (it feeds both steps), w sums the step-2 part over prompts. The mean over prompts divides by |S|.

    Arguments:
        params_ref: reference (= initial) parameters, shape (B, S*V + V*V).
        reward: RM rewards, broadcastable to (B, S, V, V).
        gold: ground-truth rewards, broadcastable to (B, S, V, V).
        n_prompts: S.
        vocab: V.
        lam: KL coefficient.
    """

    def __init__(self, params_ref: np.ndarray, reward: np.ndarray, gold: np.ndarray, n_prompts: int, vocab: int,
                 lam: float = 0.0):
        self.S, self.V, self.lam = n_prompts, vocab, float(lam)
        self.log_ref = ar_log_policy(params_ref, n_prompts, vocab)  # (B, S, V, V)
        self.reward, self.gold = np.asarray(reward, dtype=np.float64), np.asarray(gold, dtype=np.float64)

    def __call__(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        S = self.S
        log_pi = ar_log_policy(params, S, self.V)  # (B, S, V, V)
        pi = np.exp(log_pi)
        p1 = pi.sum(axis=-1)  # (B, S, V) first-token marginal
        p2 = pi / p1[..., None]  # (B, S, V, V) second token given the first
        adv = self.reward - self.lam * (log_pi - self.log_ref) if self.lam else self.reward
        adv = np.broadcast_to(adv, pi.shape)
        q = (p2 * adv).sum(axis=-1)  # (B, S, V)
        g1 = p1 * (q - (p1 * q).sum(axis=-1, keepdims=True)) / S  # (B, S, V) step-1 logits
        g2 = pi * (adv - q[..., None]) / S  # (B, S, V, V) step-2 logits
        grad_u = g1 + g2.sum(axis=2)  # (B, S, V)
        grad_w = g2.sum(axis=1)  # (B, V, V)
        gold = (pi * self.gold).sum(axis=(-2, -1)).mean(axis=-1)  # (B,)
        return np.concatenate([grad_u.reshape(len(params), -1), grad_w.reshape(len(params), -1)], axis=1), gold


# ----------------------------------------------------------------------------------------------------------
# Gradient flow


@dataclass
class Flow:
    """Trajectories of B runs of gradient flow."""

    t: np.ndarray  # (n_steps + 1, B) flow time
    gold: np.ndarray  # (n_steps + 1, B) expected ground-truth reward
    t_gamma: np.ndarray  # (B,) inf where the gold reward never rose by gamma before the run stopped
    params: np.ndarray  # (B, ...) final parameters


def gradient_flow(params0: np.ndarray, field: Callable, gamma: float, step: float, *, adaptive: bool = True,
                  t_max: float = 1e7, max_steps: int = 100_000, overshoot: float = 1.0, sync: bool = False) -> Flow:
    """Euler-integrate d params / dt = grad phi(params) for B runs at once, measuring t_gamma of each.

    Arguments:
        params0: initial parameters, shape (B, ...); not modified.
        field: params -> (gradient shaped like params, expected ground-truth reward (B,)).
        gamma: the rise of the ground-truth reward that defines t_gamma.
        step: with `adaptive`, the largest change of any parameter in one step (per run); else the time step.
        adaptive: pick each run's time step from its gradient (see the module docstring).
        t_max: a run stops at this flow time, reached gamma or not.
        max_steps: a budget of steps for all runs together.
        overshoot: a run goes on until `overshoot * t_gamma`, to show what follows in plots.
        sync: every run goes on until `overshoot` times the largest t_gamma (curves over a common time range).

    Returns:
        A `Flow`.
    """
    params = np.array(params0, dtype=np.float64)
    B = params.shape[0]
    per_run = (B,) + (1,) * (params.ndim - 1)  # broadcasts a (B,) time step over each run's parameters
    axes = tuple(range(1, params.ndim))
    t, t_gamma = np.zeros(B), np.full(B, np.inf)
    grad, gold = field(params)
    target = gold + gamma
    ts, golds = [t], [gold.copy()]
    for _ in range(max_steps):
        done = (t >= t_max) | (t >= overshoot * (t_gamma.max() if sync else t_gamma))
        if done.all():
            break
        if adaptive:
            # Floor the gradient so a flat run (zero gradient) still reaches t_max in about 100 steps.
            g_max = np.maximum(np.maximum(grad.max(axis=axes), -grad.min(axis=axes)), 100.0 * step / t_max)
            dt = step / g_max
        else:
            dt = np.full(B, float(step))
        dt = np.where(done, 0.0, dt)
        params += np.multiply(grad, dt.reshape(per_run), out=grad)
        t_prev, gold_prev, t = t, gold.copy(), t + dt
        grad, gold = field(params)
        ts.append(t)
        golds.append(gold.copy())
        crossed = np.isinf(t_gamma) & (gold >= target)
        if crossed.any():  # interpolate linearly between the two steps around the crossing
            frac = (target - gold_prev) / np.where(crossed, gold - gold_prev, 1.0)
            t_gamma = np.where(crossed, t_prev + frac * (t - t_prev), t_gamma)
    return Flow(t=np.stack(ts), gold=np.stack(golds), t_gamma=t_gamma, params=params)


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
        out: the output folder (created if missing; files of an earlier run are replaced).
        experiment: one of `EXPERIMENTS`.
        seed: seed of the random instances (initial policies, ground-truth rewards).

    Returns:
        The dict written to theory.json.
    """
    if experiment not in EXPERIMENTS:
        raise UserError(f"--experiment must be one of {', '.join(EXPERIMENTS)}; got {experiment!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed must be a non-negative integer; got {seed!r}")
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    names = EXPERIMENTS[:-1] if experiment == "all" else (experiment,)
    result = {"schema": SCHEMA, "experiment": experiment, "seed": int(seed),
              "experiments": {name: RUNNERS[name](seed=int(seed)) for name in names}}
    write_outputs(result, Path(out))
    return result
