"""Candidate forecasts the regime grid judged (`regime_grid.py analyze` prints each one's Spearman per cell).

Research code kept so the choice is reproducible: the one kept went into `rmteach.evaluate.forecast`
(`gr_auto` = `gold_rate` following the trainer). The `lat_<c>` family is the lookahead's grid search: the
tabular lookahead run for the cell's steps at step size c x learning rate, with the trainer's KL.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from rmteach.evaluate.forecast import gold_rate_per_prompt, normalize, proxy_signal, within_rms


def _softmax(theta: np.ndarray) -> np.ndarray:
    e = np.exp(theta - theta.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def lookahead_curve(z: np.ndarray, gn: np.ndarray, *, steps: int, eta: float, mode: str, kl: float = 0.0,
                    beta1: float = 0.9, beta2: float = 0.999) -> np.ndarray:
    """(T+1,) mean over prompts of E_pi_t[gn] - E_pi_0[gn] under a tabular softmax trained on E_pi[z] - kl KL(pi||u).

    mode: `sgd` (theta += eta G), `norm` (G divided once by the RMS of the initial gradient), `adam` (Adam with
    one second moment shared by every coordinate: normalized steps with momentum).
    """
    n, k = z.shape
    theta = np.zeros_like(z)
    logu = -np.log(k)
    g0 = gn.mean(axis=1)
    curve = np.zeros(steps + 1)
    m = np.zeros_like(z)
    v = 0.0
    scale = None
    for t in range(1, steps + 1):
        pi = _softmax(theta)
        logpi = np.log(np.maximum(pi, 1e-300))
        kl_p = (pi * (logpi - logu)).sum(axis=1, keepdims=True)
        adv = (z - (pi * z).sum(axis=1, keepdims=True)) - kl * ((logpi - logu) - kl_p)
        grad = pi * adv / n
        if mode == "sgd":
            step = grad * n
        elif mode == "norm":
            if scale is None:
                scale = float(np.sqrt(np.mean(grad**2))) or 1.0
            step = grad / scale
        else:
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * float(np.mean(grad**2))
            mh, vh = m / (1 - beta1**t), v / (1 - beta2**t)
            step = mh / (np.sqrt(vh) + 1e-12)
        theta = theta + eta * step
        curve[t] = float(((_softmax(theta) * gn).sum(axis=1) - g0).mean())
    return curve


def _signal(r: np.ndarray, train: Mapping[str, Any]) -> np.ndarray:
    group = train.get("algorithm") == "grpo" and train.get("grpo_scale_rewards", "group") == "group"
    return proxy_signal(r, group=group)


def adaptive(train: Mapping[str, Any]) -> bool:
    """Whether the step is scale-free in the reward: AdamW, or gradient clipping."""
    return train.get("optimizer", "adamw") == "adamw" or float(train.get("max_grad_norm", 1.0) or 0.0) > 0


def gr_norm(r, g, train, horizon):
    z, gn = _signal(r, train), normalize(g)
    return float(gold_rate_per_prompt(z, gn).mean() / (within_rms(z) or 1.0))


def gr_auto(r, g, train, horizon):
    z, gn = _signal(r, train), normalize(g)
    v = float(gold_rate_per_prompt(z, gn).mean())
    return v / (within_rms(z) or 1.0) if adaptive(train) else v


def _la(mode, eta, auto=False):
    def f(r, g, train, horizon):
        z, gn = _signal(r, train), normalize(g)
        md = mode if not auto else ("adam" if adaptive(train) else "sgd")
        c = lookahead_curve(z, gn, steps=horizon, eta=eta, mode=md, kl=float(train.get("kl_coef", 0.0)))
        return float(np.trapezoid(c) / horizon)
    return f


CANDIDATES: dict[str, Callable[..., float]] = {"gr_norm": gr_norm, "gr_auto": gr_auto}
for _eta in (0.003, 0.01, 0.03, 0.1):
    CANDIDATES[f"la_sgd_{_eta:g}"] = _la("sgd", _eta * 10)
    CANDIDATES[f"la_norm_{_eta:g}"] = _la("norm", _eta)
    CANDIDATES[f"la_adam_{_eta:g}"] = _la("adam", _eta)


def gr_group(r, g, train, horizon):
    from rmteach.evaluate.forecast import standardize_per_prompt
    return float(gold_rate_per_prompt(standardize_per_prompt(r), normalize(g)).mean())


def _la_group(eta):
    def f(r, g, train, horizon):
        from rmteach.evaluate.forecast import standardize_per_prompt
        c = lookahead_curve(standardize_per_prompt(r), normalize(g), steps=horizon, eta=eta, mode="sgd",
                            kl=float(train.get("kl_coef", 0.0)))
        return float(np.trapezoid(c) / horizon)
    return f


CANDIDATES["gr_group"] = gr_group
for _eta in (0.01, 0.03, 0.1):
    CANDIDATES[f"la_group_{_eta:g}"] = _la_group(_eta)


def best_of_k_curve(r: np.ndarray, gn: np.ndarray) -> np.ndarray:
    """(K,) mean over prompts of the expected gn of the RM's top sample among k drawn without replacement, minus
    the mean gn, for k = 1..K (unbiased over all k-subsets; ties broken by sample order)."""
    from math import comb
    n, K = r.shape
    order = np.argsort(r, axis=1, kind="stable")
    gs = np.take_along_axis(gn, order, axis=1)  # ascending by r
    out = np.zeros(K)
    for k in range(1, K + 1):
        w = np.array([comb(i, k - 1) for i in range(K)], dtype=np.float64) / comb(K, k)
        out[k - 1] = float((gs @ w).mean() - gn.mean())
    return out


def _bok(k):
    def f(r, g, train, horizon):
        return float(best_of_k_curve(r, normalize(g))[k - 1])
    return f


def bok_fall(r, g, train, horizon):
    c = best_of_k_curve(r, normalize(g))
    return float(c[-1] - c.max())


CANDIDATES.update({"bok2": _bok(2), "bok4": _bok(4), "bok_fall": bok_fall})


def partial_standardize(z: np.ndarray, alpha: float) -> np.ndarray:
    """Each prompt's centred z divided by its std^alpha times the global within-prompt RMS^(1-alpha)."""
    zc = z - z.mean(axis=1, keepdims=True)
    sd = z.std(axis=1, ddof=1, keepdims=True)
    S = within_rms(z) or 1.0
    denom = np.maximum(sd, 1e-12) ** alpha * S ** (1 - alpha)
    return np.where(sd > 1e-12, zc / denom, 0.0)


def _mix(alpha):
    def f(r, g, train, horizon):
        return float(gold_rate_per_prompt(partial_standardize(_signal(r, train), alpha), normalize(g)).mean())
    return f


for _a in (0.5, 0.75, 0.9):
    CANDIDATES[f"gr_mix_{_a:g}"] = _mix(_a)


def _la_trainer(c):
    def f(r, g, train, horizon):
        free = adaptive(train)
        z = proxy_signal(r, group=train.get("algorithm") == "grpo", scale_free=free)
        eta = c * float(train.get("learning_rate", 1e-3))
        curve = lookahead_curve(z, normalize(g), steps=horizon, eta=eta, mode="sgd",
                                kl=float(train.get("kl_coef", 0.0)))
        return float(np.trapezoid(curve) / horizon)
    return f


for _c in (1, 3, 10, 30, 100, 300):
    CANDIDATES[f"lat_{_c}"] = _la_trainer(_c)


def la_card(r, g, train, horizon):
    """The report card's `lookahead` as the current code computes it (defaults T = 60, step 0.05, the trainer's
    signal)."""
    from rmteach.evaluate.forecast import lookahead_per_prompt
    z = proxy_signal(r, group=train.get("algorithm") == "grpo", scale_free=adaptive(train))
    return float(lookahead_per_prompt(z, normalize(g), 60, 0.05).mean())


CANDIDATES["la_card"] = la_card


def _la_grid(steps, eta):
    """The report card's lookahead at (T, eta) on the trainer's signal: its defaults' grid search."""
    def f(r, g, train, horizon):
        from rmteach.evaluate.forecast import lookahead_per_prompt
        z = proxy_signal(r, group=train.get("algorithm") == "grpo", scale_free=adaptive(train))
        return float(lookahead_per_prompt(z, normalize(g), steps, eta).mean())
    return f


for _t in (30, 60, 120):
    for _e in (0.025, 0.05, 0.1, 0.2):
        CANDIDATES[f"lag_{_t}_{_e:g}"] = _la_grid(_t, _e)
