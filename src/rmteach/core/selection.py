"""Which prompts to keep for one RM, from its rows of an evaluate's prompts.parquet (pure: numpy and pandas).

Shared by `rmteach curate` (one prompt set per RM) and `rmteach study` (curation as a grid dimension).

A rule scores each prompt and says which prompts are eligible:
- `variance`: the RM's within-prompt reward variance (`variance`); every prompt is eligible.
- `forecast`: the prompt's term of the forecast (`forecast_term`, its covariance with the normalized ground
  truth); a prompt without one (NaN: no ground truth, or past `forecast.max_prompts`) is not eligible.
- `zero_std`: no score; every prompt whose K raw rewards are not all equal is kept, the dead groups dropped
  (DAPO's dynamic-sampling filter, applied once).

`variance` and `forecast` keep the `keep` highest-scoring eligible prompts: a count (an `int` >= 1) or a fraction
of the eligible prompts (a `float` in (0, 1], rounded up: 0.25 of 10 keeps 3). Equal scores are ordered by a
permutation drawn from `seed`, so a seed changes which of the tied prompts at the cut are kept, nothing else.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from .errors import UserError

RULES = ("variance", "zero_std", "forecast")
SCORES = {"variance": "variance", "forecast": "forecast_term"}  # rule -> the prompts.parquet column it ranks by
KEEP_HELP = "a fraction of the eligible prompts in (0, 1] such as 0.25, or a count >= 1 such as 100"


def parse_keep(keep: int | float | str) -> int | float:
    """`--keep` as a count (a whole number, `int`) or a fraction (a number with a point, `float`).

    "1" keeps one prompt, "1.0" keeps them all. Raises `UserError` for anything else.

    >>> parse_keep("100"), parse_keep("0.25"), parse_keep("1.0"), parse_keep(3)
    (100, 0.25, 1.0, 3)
    """
    value: Any = keep
    if isinstance(keep, str):
        try:
            value = int(keep.strip())
        except ValueError:
            try:
                value = float(keep.strip())
            except ValueError:
                raise UserError(f"--keep must be {KEEP_HELP} (got '{keep}')") from None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UserError(f"--keep must be {KEEP_HELP} (got {keep!r})")
    if isinstance(value, (int, np.integer)):
        if value < 1:
            raise UserError(f"--keep {keep}: a count of prompts must be >= 1 (a fraction has a point: 0.5)")
        return int(value)
    if not 0.0 < float(value) <= 1.0:  # NaN fails too
        raise UserError(f"--keep {keep}: a fraction must be in (0, 1] (a count is a whole number such as 100)")
    return float(value)


def keep_count(keep: int | float, n_eligible: int) -> int:
    """How many of `n_eligible` prompts `keep` keeps: a count as is, a fraction rounded up (at least one).

    The fraction is taken exactly as written (0.1 of 30 is 3, not 4 as 0.1 * 30 in floats would round up to).

    >>> keep_count(0.25, 10), keep_count(0.1, 30), keep_count(1.0, 7), keep_count(0.01, 5), keep_count(4, 9)
    (3, 3, 7, 1, 4)
    """
    if isinstance(keep, (int, np.integer)):
        if not 1 <= keep <= n_eligible:
            raise ValueError(f"a count of {keep} of {n_eligible} eligible prompts")
        return int(keep)
    return min(n_eligible, max(1, math.ceil(Fraction(repr(float(keep))) * n_eligible)))


def eligible(table: pd.DataFrame, rule: str) -> np.ndarray:
    """(n,) bools: the prompts (rows of one RM's prompts.parquet table) `rule` may keep."""
    if rule == "zero_std":
        return ~table["zero_std"].to_numpy(dtype=bool)
    return np.isfinite(table[SCORES[rule]].to_numpy(dtype=np.float64))


def rank(scores: np.ndarray, seed: int) -> np.ndarray:
    """Indices of `scores` (n,) from the highest to the lowest; equal scores in a random order drawn from `seed`.

    >>> rank(np.array([1.0, 3.0, 2.0]), seed=0).tolist()
    [1, 2, 0]
    """
    tiebreak = np.random.default_rng(seed).permutation(len(scores))  # (n,): the secondary key
    return np.lexsort((tiebreak, -np.asarray(scores, dtype=np.float64)))  # the last key is the primary one


def select(table: pd.DataFrame, rule: str, keep: int | float | None, seed: int) -> np.ndarray:
    """The prompts of one RM that `rule` keeps.

    Arguments:
        table: that RM's rows of prompts.parquet (columns `variance`, `zero_std`, `forecast_term`), one per prompt.
        rule: one of `RULES`.
        keep: a count or fraction (`parse_keep`) for `variance` and `forecast`; None for `zero_std`.
        seed: orders equal scores.

    Returns:
        (n,) bools, True for a kept prompt.

    >>> t = pd.DataFrame({"variance": [0.5, 2.0, 0.5, 1.0], "zero_std": [False] * 4, "forecast_term": np.nan})
    >>> select(t, "variance", 2, seed=0).tolist()
    [False, True, False, True]
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}")
    ok = eligible(table, rule)  # (n,)
    if rule == "zero_std":
        if keep is not None:
            raise ValueError("the zero_std rule keeps every live prompt: no keep")
        return ok
    if keep is None:
        raise ValueError(f"the {rule} rule needs a keep")
    scores = np.where(ok, table[SCORES[rule]].to_numpy(dtype=np.float64), -np.inf)  # ineligible ones rank last
    kept = np.zeros(len(table), dtype=bool)
    kept[rank(scores, seed)[: keep_count(keep, int(ok.sum()))]] = True
    return kept


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def summarize(table: pd.DataFrame, kept: np.ndarray) -> dict[str, Any]:
    """What the kept prompts hold of one RM's signal.

    Returns:
        `variance_share`: the kept prompts' share of the RM's summed reward variance (None when it is 0);
        `forecast_share`: their share of its summed `forecast_term` over the prompts that have one (None without
        terms, or when that sum is not positive: a share of a negative total means nothing), with the two sums
        `forecast_kept` and `forecast_total`; `forecast_gain`: the kept prompts' mean term over the mean of all
        that have one, i.e. how many times the forecast's gain per prompt the curated set offers (None with the
        share, or when no kept prompt has a term); `accuracy_kept` and `accuracy_dropped`: the mean on-policy accuracy
        of the kept and of the dropped prompts (None where no prompt has one).

    >>> t = pd.DataFrame({"variance": [3.0, 1.0], "forecast_term": [1.0, np.nan], "onpolicy_accuracy": [0.9, 0.5]})
    >>> summarize(t, np.array([True, False]))["variance_share"]
    0.75
    """
    kept = np.asarray(kept, dtype=bool)  # (n,)
    variance = table["variance"].to_numpy(dtype=np.float64)
    total = float(variance.sum())
    term = table["forecast_term"].to_numpy(dtype=np.float64)
    has = np.isfinite(term)
    t_total, t_kept = (float(term[has].sum()), float(term[has & kept].sum())) if has.any() else (None, None)
    share = t_kept / t_total if t_total is not None and t_kept is not None and t_total > 0 else None
    accuracy = table["onpolicy_accuracy"].to_numpy(dtype=np.float64)
    return {
        "variance_share": float(variance[kept].sum()) / total if total > 0 else None,
        "forecast_share": share,
        "forecast_gain": share * has.sum() / (has & kept).sum() if share is not None and (has & kept).any() else None,
        "forecast_kept": t_kept,
        "forecast_total": t_total,
        "accuracy_kept": _mean(accuracy[kept]),
        "accuracy_dropped": _mean(accuracy[~kept]),
    }


def kept_rows(rows: list[dict[str, Any]], ids: list[str], kept: np.ndarray, id_col: str) -> list[dict[str, Any]]:
    """The kept source rows, in their order, each with its id: a row without one (its id was its index in the
    source) gets it written into `id_col`, so the curated set keeps the source's ids.

    >>> kept_rows([{"prompt": "a"}, {"prompt": "b", "id": None}], ["0", "1"], np.array([False, True]), "id")
    [{'prompt': 'b', 'id': 1}]
    """
    out = []
    for i in np.flatnonzero(kept):
        row = dict(rows[i])
        if row.get(id_col) is None:
            row[id_col] = int(ids[i])  # a number, as the row index was: str() of it is the id again
        out.append(row)
    return out
