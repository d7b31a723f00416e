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

The experiments built on these live in `theory/experiments.py`, plots and HTML in `theory/report.py`;
this module is numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


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
