"""Outcomes of one train run, pure: the held-out evaluation curve and the ground-truth gain read from it.

A run's *curve* is the held-out evaluation measured every `eval_every` steps (`eval_gold_reward`,
`eval_proxy_reward`), step 0 being the initial policy. An *outcome* is a number per run: `gold_increase@f`
is the eval gold reward at the fraction `f` of the curve's last step minus its step-0 value (linear
interpolation between eval steps), `gold_auc` the area under the increase curve divided by the last step
(the mean increase over training), and the same for `proxy_*`.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np


def outcome_names(budgets: Sequence[float]) -> list[str]:
    """Names of every outcome for these budgets (fractions of the steps), gold first.

    >>> outcome_names([0.5, 1.0])
    ['gold_increase@0.5', 'gold_increase@1', 'gold_auc', 'proxy_increase@0.5', 'proxy_increase@1', 'proxy_auc']
    """
    names = []
    for kind in ("gold", "proxy"):
        names += [f"{kind}_increase@{b:g}" for b in budgets] + [f"{kind}_auc"]
    return names


def proxy_counterpart(outcome: str) -> str:
    """The proxy-reward outcome measured like a gold-reward outcome: `gold_auc` -> `proxy_auc`."""
    return "proxy" + outcome.removeprefix("gold")


def eval_curve(records: Iterable[dict[str, Any]]) -> dict[str, list]:
    """The held-out evaluation curve of a run from its metrics records (one dict per metrics.jsonl line).

    Records with `eval_gold_reward` are kept, sorted by step; a step logged twice keeps its last record.

    Returns:
        `{"step": [...], "gold": [...], "proxy": [...], "variance": [...]}`, lists of equal length.
    """
    by_step: dict[int, dict[str, Any]] = {}
    for r in records:
        if r.get("eval_gold_reward") is not None:
            by_step[int(r["step"])] = r
    steps = sorted(by_step)
    return {
        "step": steps,
        "gold": [float(by_step[s]["eval_gold_reward"]) for s in steps],
        "proxy": [_float_or_none(by_step[s].get("eval_proxy_reward")) for s in steps],
        "variance": [_float_or_none(by_step[s].get("eval_reward_variance")) for s in steps],
    }


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


def run_outcomes(curve: dict[str, list], budgets: Sequence[float]) -> dict[str, float]:
    """Increases of the eval gold and proxy reward after each budget, and the areas under the increase curves.

    Arguments:
        curve: an `eval_curve`, which must start at step 0 and have at least one later step.
        budgets: fractions in (0, 1] of the curve's last step.

    Returns:
        `{outcome name: value}` plus `steps` (the last eval step) and `initial_gold` / `final_gold`.

    >>> c = {"step": [0, 2, 4], "gold": [1.0, 2.0, 4.0], "proxy": [0.0, 1.0, 1.0]}
    >>> o = run_outcomes(c, [0.25, 1.0])
    >>> o["gold_increase@0.25"], o["gold_increase@1"], o["gold_auc"]
    (0.5, 3.0, 1.25)
    """
    steps = np.asarray(curve["step"], dtype=np.float64)  # (n_evals,)
    if steps.size < 2 or steps[0] != 0:
        raise ValueError(f"an eval curve needs step 0 and a later step (has steps {curve['step'][:5]})")
    horizon = float(steps[-1])
    out: dict[str, float] = {"steps": horizon, "initial_gold": float(curve["gold"][0]), "final_gold": float(curve["gold"][-1])}
    for kind in ("gold", "proxy"):
        values = curve[kind]
        if any(v is None for v in values):
            raise ValueError(f"the eval curve lacks some eval_{kind}_reward values")
        increase = np.asarray(values, dtype=np.float64) - float(values[0])  # (n_evals,), 0 at step 0
        for b in budgets:
            out[f"{kind}_increase@{b:g}"] = float(np.interp(b * horizon, steps, increase))
        out[f"{kind}_auc"] = float(np.trapezoid(increase, steps) / horizon)
    return out
