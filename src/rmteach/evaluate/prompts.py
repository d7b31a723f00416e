"""Per-prompt diagnostics of an evaluation: prompts.parquet, one row per (prompt, RM), and where the signal sits.

The report card gives means over prompts; this file keeps the per-prompt values they are means of, so a user
sees *where* an RM teaches (its reward variance under the policy) and where it is flat, and a later step can pick
prompts from it. Every column reuses the report's own functions (`core.metrics`, `evaluate.forecast`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core import metrics
from .forecast import gold_rate_terms

if TYPE_CHECKING:  # report.py imports this module
    import pandas as pd

    from .report import EvalData

COLUMNS = ("prompt_id", "reward_model", "is_ground_truth", "variance", "zero_std", "reward_mean", "reward_std",
           "onpolicy_accuracy", "forecast_term")


def prompts_frame(data: EvalData, gold_name: str | None, *, group: bool, scale_free: bool = False) -> pd.DataFrame:
    """One row per (prompt, RM), RMs in scoring order (ground truth last), prompts in file order.

    Arguments:
        data: the measured rewards.
        gold_name: the ground truth's name, or None without one.
        group: whether the forecast standardizes per prompt (`forecast.group`), as `gold_rate` does.
        scale_free: whether the assumed trainer's step is scale-free (`TrainerAssumption.scale_free`).

    Returns:
        A frame with `COLUMNS`: `variance` (ddof=1, of the rewards normalized over all the RM's samples, as the
        report), `zero_std` (the K raw rewards all equal), `reward_mean`/`reward_std` (raw, ddof=1),
        `onpolicy_accuracy` (pairwise sign agreement with the ground truth) and `forecast_term` (the prompt's
        `gold_rate`, whose mean is the report's value); the last two are NaN without a ground truth and past the
        m prompts it scored (`forecast.max_prompts`).
    """
    import pandas as pd

    gold = data.rewards[gold_name].onpolicy if gold_name else None  # (m, K)
    frames = []
    for name, table in data.rewards.items():
        r = np.asarray(table.onpolicy, dtype=np.float64)  # (n, K); m rows for a ground truth cut to m prompts
        n = len(r)
        accuracy, term = np.full(n, np.nan), np.full(n, np.nan)
        if gold is not None:
            m = min(n, len(gold))
            accuracy[:m] = metrics.pairwise_sign_agreement(r[:m], gold[:m])
            term[:m] = gold_rate_terms(r, gold, group=group, scale_free=scale_free)[:m]
        frames.append(pd.DataFrame({
            "prompt_id": np.array([p.id for p in data.prompts[:n]], dtype=str),
            "reward_model": name,
            "is_ground_truth": name == gold_name,
            "variance": metrics.per_prompt_variance(metrics.fit_normalization(r).apply(r)),
            "zero_std": metrics.zero_std(r),
            "reward_mean": r.mean(axis=1),
            "reward_std": r.std(axis=1, ddof=1),
            "onpolicy_accuracy": accuracy,
            "forecast_term": term,
        }))
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------------------
# The concentration table of the summary


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def concentration_rows(report: dict[str, Any], order: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary's second table: per RM (in `order`, names), how much of its reward variance
    sits in how few prompts; an RM without variance shows dashes."""
    header = ["reward model", "variance in top 10% of prompts", "in top 25%", "prompts holding half"]
    cards = {rm["name"]: rm for rm in report["reward_models"]}
    rows = []
    for rm in (cards[name] for name in order):
        c = rm["concentration"]
        half = "-" if c["prompts_for_half"] is None else f"{c['prompts_for_half']} of {c['num_prompts']}"
        rows.append([rm["name"] + (" (ground truth)" if rm["is_ground_truth"] else ""),
                     _share(c["top_10pct_share"]), _share(c["top_25pct_share"]), half])
    return header, rows
