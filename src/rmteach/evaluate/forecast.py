"""The forecast, pure: how fast each RM will raise the ground truth under policy gradient, from `evaluate`'s samples.

Inputs per RM: r (n, K) raw rewards on the K samples of each of n prompts, and the ground truth's g (n, K) on
the same samples. As in the paper and the trainer, an RM is normalized over all n*K initial-policy rewards,
z = (r - mean r) / std r, and the ground truth likewise with its own statistics, gn (normalizing g rescales
every forecast of one policy by one constant, so rankings never depend on it).

**gold_rate.** Model each prompt's policy as a softmax over its K samples, pi = softmax(theta), uniform at the
start (theta = 0), trained by gradient flow on J_z = E_pi[z]. The softmax Jacobian gives
dJ_z/dtheta_k = pi_k (z_k - E_pi z), and the same for gn, so under theta' = grad J_z

    d/dt E_pi[gn] = <grad J_gn, grad J_z> = sum_k pi_k^2 (z_k - E_pi z)(gn_k - E_pi gn),

which at the uniform start is (1/K^2) sum_k (z_k - zbar)(gn_k - gbar) = ((K-1)/K^2) Cov_ddof1(z, gn). The
constant is the same for every RM, so `gold_rate` is the per-prompt sample covariance of z and gn, averaged over
prompts: per prompt std(z) * std(gn) * corr(z, gn), the paper's reward variance and on-policy agreement in one
number. A flat RM and an RM that disagrees with the ground truth both shrink it; one that prefers what the
ground truth dislikes makes it negative.

**lookahead.** The same tabular dynamics integrated for T exact gradient-ascent steps of size eta on E_pi[z]
(theta <- theta + eta * pi * (z - E_pi z)); per prompt the mean gain of E_pi[gn] over t = 0..T (trapezoid
area / T, as the study's `gold_auc` summarizes an eval curve). It sees an RM that helps first and saturates or
hacks later.

**best_of_k_gold_lift** (Frick et al., 2025): gn of the sample the RM ranks first minus the prompt's mean gn.
Scale-free in r: it measures accuracy at the top, not teaching speed.

**Advantages.** RLOO and GRPO with `batch` or `none` scaling learn from z. GRPO's default `group` scaling
divides each prompt's advantages by that prompt's reward std, which undoes any per-prompt rescaling of the RM
(the variance effect): its forecasts use the per-prompt standardized reward instead of z. (TRL divides by
std + 1e-4, so a prompt whose normalized rewards vary by less than about 1e-4 keeps part of its scale there;
the forecast treats it as fully standardized.)

**The trainer** (`forecast.trainer`; `study` passes its train block). Everything above is plain gradient flow,
whose speed scales with the signal: plain SGD without clipping, the regime of the paper's theorems. AdamW divides
each parameter's step by the RMS of its recent gradients, and gradient clipping (which binds on most RLHF
steps) divides the whole step by its norm; either way the size of the step no longer follows the reward's
scale, only its direction does. In a network whose parameters are shared by every prompt, the gradient's scale
is the RMS of the advantages over prompts, S = sqrt(mean over prompts of the within-prompt variance of z) (the
paper's reward variance, for RLOO), so a scale-free step follows z / S (`proxy_signal(scale_free=True)`) and

    gold_rate (AdamW or clipping) = mean over prompts of Cov_p(z, gn) / S:

an RM's rate per unit of step, where plain SGD's is per unit of learning rate. Low variance spread evenly over
prompts costs nothing (it is divided out); low variance on some prompts still costs (the paper's `gt_lowvar`:
half its prompts are flat, and the step goes to the other half), and disagreement with the ground truth costs
as before. Measured over the regime grid (README): AdamW cells' Spearman with gold_auc rose from 0.71-0.93
(plain `gold_rate`) to 0.976-1.000 with the normalization; SGD cells keep the plain rate, which ranks them
better. The learning rate rescales every RM alike, and the KL term's gradient is zero at the start, so neither
changes the rate; the KL coefficient enters the hacking risk's threshold only.

**Hacking risk** (`hacking_risk`): the RM's best-of-K gold lift as a share of the ground truth's own, under a
threshold that is higher for a scale-free step without a KL penalty (it moves the policy furthest).

All forecasts are means over prompts of per-prompt values, so their CIs and the ranking's probabilities come
from one paired bootstrap over prompts (the same resampled prompts for every RM): `ranking`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..core.metrics import fit_normalization
from .ranking import bootstrap_indices, rank, summarize

FORECASTS = ("gold_rate", "lookahead", "best_of_k_gold_lift")


def normalize(x: np.ndarray) -> np.ndarray:
    """The paper's normalization over all entries: (x - mean) / std (ddof=1), zeros when x is constant.

    >>> normalize(np.array([[1.0, 3.0], [5.0, 7.0]])).round(3).tolist()
    [[-1.162, -0.387], [0.387, 1.162]]
    """
    return fit_normalization(x).apply(x)


def standardize_per_prompt(x: np.ndarray) -> np.ndarray:
    """Each row minus its mean over its sample std (ddof=1), as GRPO's group scaling; constant rows give 0.

    >>> standardize_per_prompt(np.array([[1.0, 3.0], [2.0, 2.0]])).round(3).tolist()
    [[-0.707, 0.707], [0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=1, keepdims=True)  # (n, K)
    sd = x.std(axis=1, ddof=1, keepdims=True)  # (n, 1)
    ok = sd > 1e-12 * np.maximum(1.0, np.abs(x).max(axis=1, keepdims=True))
    return np.where(ok, centred / np.where(ok, sd, 1.0), 0.0)


def gold_rate_per_prompt(z: np.ndarray, gn: np.ndarray) -> np.ndarray:
    """Per-prompt sample covariance (ddof=1) over the K samples of z and gn: (n, K), (n, K) -> (n,).

    >>> gold_rate_per_prompt(np.array([[0.0, 2.0, 4.0]]), np.array([[1.0, 1.0, 4.0]])).tolist()
    [3.0]
    """
    z, gn = np.asarray(z, dtype=np.float64), np.asarray(gn, dtype=np.float64)
    zc = z - z.mean(axis=1, keepdims=True)
    gc = gn - gn.mean(axis=1, keepdims=True)
    return (zc * gc).sum(axis=1) / (z.shape[1] - 1)


def _softmax(theta: np.ndarray) -> np.ndarray:
    e = np.exp(theta - theta.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def lookahead_per_prompt(z: np.ndarray, gn: np.ndarray, steps: int, step_size: float) -> np.ndarray:
    """Per prompt, the mean ground-truth gain over `steps` exact ascent steps on E_pi[z] from uniform: (n,).

    Arguments:
        z, gn: (n, K) proxy signal and normalized ground truth.
        steps, step_size: T >= 1 and eta > 0 of theta <- theta + eta * pi * (z - E_pi z).

    Returns:
        (n,) trapezoid area of E_pi_t[gn] - E_pi_0[gn] over t = 0..T, divided by T.

    >>> lookahead_per_prompt(np.array([[1.0, -1.0]]), np.array([[1.0, -1.0]]), 1, 1.0).round(4).tolist()
    [0.2311]
    """
    z, gn = np.asarray(z, dtype=np.float64), np.asarray(gn, dtype=np.float64)
    theta = np.zeros_like(z)  # (n, K): uniform start
    g0 = gn.mean(axis=1)
    gains = np.zeros((steps + 1, z.shape[0]))  # (T+1, n), row 0 is the start
    for t in range(1, steps + 1):
        pi = _softmax(theta)
        theta = theta + step_size * pi * (z - (pi * z).sum(axis=1, keepdims=True))
        gains[t] = (_softmax(theta) * gn).sum(axis=1) - g0
    return np.trapezoid(gains, axis=0) / steps


def best_of_k_per_prompt(r: np.ndarray, gn: np.ndarray) -> np.ndarray:
    """Per prompt, gn of the sample ranked first by r (tied tops share) minus the mean gn: (n,).

    >>> best_of_k_per_prompt(np.array([[3.0, 1.0, 3.0]]), np.array([[2.0, 0.0, 1.0]])).tolist()
    [0.5]
    """
    r, gn = np.asarray(r, dtype=np.float64), np.asarray(gn, dtype=np.float64)
    top = r >= r.max(axis=1, keepdims=True) - 1e-12 * np.maximum(1.0, np.abs(r).max(axis=1, keepdims=True))
    return (gn * top).sum(axis=1) / top.sum(axis=1) - gn.mean(axis=1)


def within_rms(z: np.ndarray) -> float:
    """sqrt of the mean over prompts of the within-prompt variance (ddof=1): the scale of the advantages.

    >>> within_rms(np.array([[0.0, 2.0], [1.0, 1.0]]))
    1.0
    """
    return float(np.sqrt(np.mean(np.var(np.asarray(z, dtype=np.float64), axis=1, ddof=1))))


def proxy_signal(r: np.ndarray, *, group: bool, scale_free: bool = False) -> np.ndarray:
    """What the trainer's step follows: r normalized over all samples, or standardized per prompt (GRPO group);
    with a scale-free step (AdamW, clipping), divided by its within-prompt RMS (`within_rms`).

    >>> proxy_signal(np.array([[1.0, 3.0], [5.0, 7.0]]), group=True).round(3).tolist()
    [[-0.707, 0.707], [-0.707, 0.707]]
    >>> within_rms(proxy_signal(np.array([[1.0, 3.0], [5.0, 9.0]]), group=False, scale_free=True))
    1.0
    """
    z = standardize_per_prompt(r) if group else normalize(r)
    if scale_free:
        s = within_rms(z)
        z = z / s if s > 0 else z
    return z


def per_prompt_forecasts(
    z: np.ndarray, gn: np.ndarray, r: np.ndarray, *, steps: int, step_size: float
) -> dict[str, np.ndarray]:
    """Every forecast of one RM per prompt.

    Arguments:
        z: (n, K) the RM's proxy signal (`proxy_signal`); gn: (n, K) the normalized ground truth;
        r: (n, K) the RM's raw rewards (best-of-K needs only their order).
        steps, step_size: the lookahead's T and eta.

    Returns:
        `{name: (n,)}` for each name in `FORECASTS`.
    """
    return {
        "gold_rate": gold_rate_per_prompt(z, gn),
        "lookahead": lookahead_per_prompt(z, gn, steps, step_size),
        "best_of_k_gold_lift": best_of_k_per_prompt(r, gn),
    }


def gold_rate_terms(r: np.ndarray, gold: np.ndarray, *, group: bool, scale_free: bool = False) -> np.ndarray:
    """One RM's per-prompt `gold_rate` on the first m = len(gold) prompts: (n, K), (m, K) -> (m,).

    The terms whose mean over prompts is the report's `gold_rate` value (z as `forecast_report` builds it).

    >>> gold_rate_terms(np.array([[1.0, 3.0], [5.0, 7.0]]), np.array([[0.0, 1.0]]), group=True).round(3).tolist()
    [1.0]
    """
    z = proxy_signal(np.asarray(r, dtype=np.float64), group=group, scale_free=scale_free)[: len(gold)]
    return gold_rate_per_prompt(z, normalize(gold))


def check_shapes(r: np.ndarray, g: np.ndarray, names: Sequence[str]) -> None:
    """Raise ValueError unless r and g are (n, K >= 2) arrays of the same shape (a bug, not user input)."""
    if r.shape != g.shape or r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"{'/'.join(names)}: expected rewards of the same shape (n, K>=2), got {r.shape}, {g.shape}")


def hacking_risk(lift: float, gold_lift: float, *, unrestrained: bool) -> dict[str, Any]:
    """Whether training on this RM risks ending below the policy's start on the ground truth.

    The RM's best-of-K gold lift as a share of the ground truth's own (how much of the best response the RM
    finds among the K samples: at 1 it finds it, at 0 its choice is no better than chance, below 0 worse) under
    a threshold. RL pushes the policy toward what the RM ranks first, and further than K samples reach
    (Gao et al., 2023). How far it goes depends on the trainer: a scale-free step (AdamW, clipping) without a
    KL penalty drifts furthest, so its threshold is higher (`unrestrained`); plain SGD or a KL penalty keep the
    policy nearer its start. Thresholds chosen on toy world 0's regime-grid cells (each halfway between the
    highest share that ended below its start and the lowest that did not) and checked on world 1's (README,
    "Hacking risk"; `scripts/regime_grid.py`).
    """
    threshold = HACK_SHARE_UNRESTRAINED if unrestrained else HACK_SHARE
    share = float(lift / gold_lift) if gold_lift > 0 else None
    return {"best_of_k_share": share, "threshold": threshold,
            "flag": bool(share is not None and share < threshold)}


HACK_SHARE = 0.25  # plain SGD, or a KL penalty
HACK_SHARE_UNRESTRAINED = 0.5  # AdamW or clipping, without a KL penalty


def forecast_report(
    rewards: Mapping[str, np.ndarray], gold: np.ndarray, candidates: Sequence[str], *, group: bool, steps: int,
    step_size: float, primary: str, n_resamples: int, seed: int, gradient: Mapping[str, float] | None = None,
    scale_free: bool = False, kl_coef: float = 0.0,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every RM's forecast block and the ranking of the candidates, from raw rewards.

    Arguments:
        rewards: `{rm name: (n, K) raw rewards}`, the ground truth's own row included (it gets a block too).
        gold: (m, K) the ground truth's raw rewards on the first m <= n prompts (all prompts unless
            `forecast.max_prompts`); forecasts use those m prompts.
        candidates: the RMs the ranking orders (not the ground truth).
        group, steps, step_size: see `per_prompt_forecasts`.
        scale_free: whether the trainer's step ignores the reward's scale (`TrainerAssumption.scale_free`).
        kl_coef: the trainer's KL coefficient (the hacking risk's threshold depends on it).
        primary: the forecast the ranking uses; `gradient_alignment` takes its values from `gradient`.
        n_resamples, seed: the paired bootstrap over prompts.
        gradient: `{rm name: gradient_alignment}` when it was computed.

    Returns:
        (`{rm name: {"gold_rate", "lookahead", "best_of_k_gold_lift": {"value", "ci95"}, "gradient_alignment":
        {"value"} or None}}`, the ranking as `rank` returns it plus `primary`).
    """
    m = gold.shape[0]
    idx = bootstrap_indices(m, n_resamples, seed)  # (B, m): the same resampled prompts for every RM
    gn = normalize(gold)  # (m, K)
    blocks, per = {}, {}
    gold_lift = float(best_of_k_per_prompt(gold, gn).mean())
    for name, r in rewards.items():
        r = np.asarray(r, dtype=np.float64)
        check_shapes(r[:m], gold, [name, "ground truth"])
        z = proxy_signal(r, group=group, scale_free=scale_free)[:m]  # over all the RM's samples, as the trainer
        per[name] = per_prompt_forecasts(z, gn, r[:m], steps=steps, step_size=step_size)
        blocks[name] = {**summarize(per[name], idx),
                        "hacking_risk": hacking_risk(float(per[name]["best_of_k_gold_lift"].mean()), gold_lift,
                                                     unrestrained=scale_free and kl_coef == 0),
                        "gradient_alignment": {"value": float(gradient[name])} if gradient and name in gradient
                        else None}
    if primary == "gradient_alignment":
        values = {n: float(gradient[n]) for n in candidates} if gradient else {}
        names = sorted(values, key=lambda n: (-values[n], n))
        # One estimate per RM, no per-prompt values: nothing to bootstrap, so closeness is not measured.
        ranking = {"order": [{"name": n, "value": values[n], "p_above_next": None} for n in names],
                   "best": names[0] if names else None, "within_noise_of_best": None, "stability": None}
    else:
        ranking = rank({n: per[n][primary] for n in candidates}, idx)
    return blocks, {"primary": primary, **ranking}
