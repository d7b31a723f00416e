"""The study's analysis, pure: points per (policy, RM), correlations across RMs, rankings, then the claims.

Data in, JSON-able dicts out; no model code and no files. A *point* (`study.points.Point`) is one (policy, RM):
its predictors (from the policy's evaluate report) and its outcomes (`study.outcomes`) averaged over seeds; a
*predictor* is what one would measure before training: reward variance, on-/off-policy accuracy, their
combinations as in Razin et al. (2025).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.metrics import CORRELATIONS, correlation_with_ci, minmax
from ..evaluate import forecast
from .claims import (
    claim_best_differs,
    claim_forecast_ranks_best,
    claim_low_variance_slower,
    claim_variance_beats_offpolicy,
    find_perfect_low_variance,
)
from .noise import split_half_reliability
from .outcomes import outcome_names, proxy_counterpart
from .points import Point, aggregate_points, seed_matrix

PAPER_PREDICTORS = ("reward_variance", "onpolicy_accuracy", "offpolicy_accuracy", "on_off_accuracy",
                    "variance_and_accuracy")
# Every forecast of a report card: `evaluate.forecast.FORECASTS` (per prompt, from samples) and the gradient
# alignment (`evaluate.gradient`, when asked for), shown after the lookahead.
_AT = forecast.FORECASTS.index("lookahead") + 1
FORECASTS = (*forecast.FORECASTS[:_AT], "gradient_alignment", *forecast.FORECASTS[_AT:])
PREDICTORS = PAPER_PREDICTORS + FORECASTS
PREDICTOR_LABELS = {
    "reward_variance": "reward variance",
    "onpolicy_accuracy": "on-policy accuracy",
    "offpolicy_accuracy": "off-policy accuracy",
    "on_off_accuracy": "on- & off-policy accuracy (average)",
    "variance_and_accuracy": "variance & accuracy (average)",
    "gold_rate": "forecast: gold_rate",
    "lookahead": "forecast: lookahead",
    "gradient_alignment": "forecast: gradient alignment",
    "best_of_k_gold_lift": "best-of-K gold lift (PPE)",
}
DERIVED = ("variance_and_accuracy",)  # depends on the RMs compared: computed per scope by `predictor_matrix`
# The accuracy that `variance_and_accuracy` averages with variance (both min-max scaled within the RMs compared).
COMBINED_ACCURACY = "onpolicy_accuracy"
MIN_POINTS = 3  # a correlation over fewer RMs is undefined

# ----------------------------------------------------------------------------------------------------------
# Predictors of one RM (points: `study.points`)


def predictors_from_card(card: dict[str, Any]) -> dict[str, float | None]:
    """The raw predictors of one RM from its evaluate report card.

    Off-policy accuracy is agreement with the ground truth's ordering of the preference pairs (the paper's
    "relabeled by the ground truth") when the report has it, else agreement with the data set's labels.
    `variance_and_accuracy` depends on the other RMs compared and is filled in by `correlations`. The
    forecasts are None in a report without a ground truth (and `gradient_alignment` unless it was asked for).
    """
    off = card.get("offpolicy_accuracy_vs_gold")
    if off is None:
        off = card.get("offpolicy_accuracy")
    on = card.get("onpolicy_accuracy")
    forecast = card.get("forecast") or {}
    return {
        "reward_variance": float(card["reward_variance"]["mean"]),
        "onpolicy_accuracy": on,
        "offpolicy_accuracy": off,
        "on_off_accuracy": None if on is None or off is None else (on + off) / 2.0,
        **{name: (forecast.get(name) or {}).get("value") for name in FORECASTS},
    }


# ----------------------------------------------------------------------------------------------------------
# Correlations across RMs


def counted(point: Point, include_ground_truth: bool, exclude: Sequence[str] = ()) -> bool:
    """Whether a point enters the correlations: not an excluded RM, and not the ground truth unless included."""
    return (include_ground_truth or not point["is_ground_truth"]) and point["reward_model"] not in exclude


def scope_points(
    points: Sequence[Point], include_ground_truth: bool, exclude: Sequence[str] = ()
) -> dict[str, list[Point]]:
    """The points each correlation is computed over: one scope per policy, plus `pooled` with 2+ policies."""
    kept = [p for p in points if counted(p, include_ground_truth, exclude)]
    scopes: dict[str, list[Point]] = {}
    for p in kept:
        scopes.setdefault(p["policy"], []).append(p)
    if len(scopes) > 1:
        scopes["pooled"] = list(kept)
    return scopes


def predictor_matrix(points: Sequence[Point]) -> dict[str, np.ndarray | None]:
    """Each predictor as an array over `points` (None when any point lacks it).

    `variance_and_accuracy` is the mean of min-max scaled variance and min-max scaled `COMBINED_ACCURACY`,
    scaled within these points (so it depends on which RMs are compared, as in the paper).
    """
    cols: dict[str, np.ndarray | None] = {}
    for name in (p for p in PREDICTORS if p not in DERIVED):
        vals = [p["predictors"].get(name) for p in points]
        cols[name] = None if any(v is None for v in vals) else np.asarray(vals, dtype=np.float64)
    var, acc = cols["reward_variance"], cols[COMBINED_ACCURACY]
    if var is None or acc is None:
        cols["variance_and_accuracy"] = None
    else:  # rounded so that ties by construction (e.g. 0 + 1 and 1 + 0) are exact ties, not 1e-17 apart
        cols["variance_and_accuracy"] = np.round((minmax(var) + minmax(acc)) / 2.0, 12)
    return cols


def correlations(
    points: Sequence[Point],
    outcomes: Sequence[str],
    *,
    ci_outcomes: Sequence[str],
    include_ground_truth: bool,
    n_resamples: int,
    seed: int,
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Pearson, Spearman and Kendall correlation of every predictor with every outcome, per scope.

    Arguments:
        points: from `aggregate_points`.
        outcomes: outcome names to correlate with.
        ci_outcomes: outcomes that get a bootstrap 95% CI over RMs (the others get the value only: the
            bootstrap costs about 0.2 s per coefficient).
        include_ground_truth: whether the ground truth's own run is one of the points.
        n_resamples, seed: the bootstrap's size and seed (the same resamples for every coefficient).
        exclude: names of candidate RMs left out of every scope (they are still ranked).

    Returns:
        `{"include_ground_truth", "excluded", "min_points", "scopes": {scope: {"reward_models", "n", "note",
        "table": {predictor: {outcome: {method: {"value", "ci95", "n"}}}}, "reliability": {outcome:
        `noise.split_half_reliability`}}}}`; values are None when undefined. The reliability (for `ci_outcomes`)
        is how well the outcome's RM ranking from half the seeds agrees with the other half's, stepped up to all
        the seeds (Spearman-Brown); its square root bounds what a predictor's Spearman can be expected to reach.
    """
    result: dict[str, Any] = {"include_ground_truth": include_ground_truth, "excluded": list(exclude),
                              "min_points": MIN_POINTS, "scopes": {}}
    for scope, pts in scope_points(points, include_ground_truth, exclude).items():
        n = len(pts)
        note = None
        if n < MIN_POINTS:
            note = f"correlations need at least {MIN_POINTS} reward models; this scope has {n}"
        cols = predictor_matrix(pts)
        table: dict[str, Any] = {}
        for pred in PREDICTORS:
            x = cols[pred]
            table[pred] = {}
            for out in outcomes:
                y = np.asarray([p["outcomes"][out]["mean"] for p in pts], dtype=np.float64)  # (n,)
                table[pred][out] = {}
                for method in CORRELATIONS:
                    if x is None or n < MIN_POINTS:
                        table[pred][out][method] = {"value": None, "ci95": None, "n": n}
                    else:
                        b = n_resamples if out in ci_outcomes else 0
                        table[pred][out][method] = correlation_with_ci(x, y, method, n_resamples=b, seed=seed)
        label = [p["reward_model"] if scope != "pooled" else f"{p['policy']}/{p['reward_model']}" for p in pts]
        reliability = {out: split_half_reliability(seed_matrix(pts, out)) for out in ci_outcomes}
        result["scopes"][scope] = {"reward_models": label, "n": n, "note": note, "table": table,
                                   "reliability": reliability}
    return result


def contest_scopes(scopes: dict[str, list[Point]], outcome: str) -> dict[str, dict[str, Any]]:
    """Per scope, what `claims.contest` compares: predictors, (n, n_seeds) outcome values and RM names."""
    return {scope: {"predictors": predictor_matrix(pts), "values": seed_matrix(pts, outcome),
                    "reward_models": [p["reward_model"] for p in pts]} for scope, pts in scopes.items()}


def describe_set(include_ground_truth: bool, exclude: Sequence[str]) -> str:
    """The paper's set of RMs in words, for claim (b)'s statement.

    >>> describe_set(False, ["rm_long"])
    "the candidate RMs, the ground truth's own run not counted, rm_long left out"
    """
    gt = "the ground truth's own run counted" if include_ground_truth else "the ground truth's own run not counted"
    return f"the candidate RMs, {gt}" + (f", {', '.join(exclude)} left out" if exclude else "")


# ----------------------------------------------------------------------------------------------------------
# Rankings


def rankings(points: Sequence[Point], outcome: str) -> dict[str, Any]:
    """Per policy, the candidate RMs ranked by `outcome` (mean over seeds, highest first; ties by name).

    The ground truth's own run, when there is one, is listed after them with rank None (a reference).

    Returns:
        `{"outcome", "policies": {policy: [{"rank", "reward_model", "mean", "std", "is_ground_truth"}]},
        "best": {policy: RM name or None}}`.
    """
    by_policy: dict[str, list[Point]] = {}
    for p in points:
        by_policy.setdefault(p["policy"], []).append(p)
    table, best = {}, {}
    for policy, pts in by_policy.items():
        cand = sorted((p for p in pts if not p["is_ground_truth"]), key=lambda p: (-p["outcomes"][outcome]["mean"], p["reward_model"]))
        rows = [_rank_row(i + 1, p, outcome) for i, p in enumerate(cand)]
        rows += [_rank_row(None, p, outcome) for p in pts if p["is_ground_truth"]]
        table[policy] = rows
        best[policy] = cand[0]["reward_model"] if cand else None
    return {"outcome": outcome, "policies": table, "best": best}


def _rank_row(rank: int | None, p: Point, outcome: str) -> dict[str, Any]:
    o = p["outcomes"][outcome]
    return {"rank": rank, "reward_model": p["reward_model"], "mean": o["mean"], "std": o["std"],
            "is_ground_truth": p["is_ground_truth"]}


def analyze(
    runs: Sequence[dict[str, Any]],
    *,
    budgets: Sequence[float],
    primary_outcome: str,
    include_ground_truth: bool,
    n_resamples: int,
    seed: int,
    roles: dict[str, str | None],
    transformed: set[str],
    exclude: Sequence[str] = (),
    forecast: str = "gold_rate",
) -> dict[str, Any]:
    """Points, correlations, rankings and claims of a study from its runs.

    Arguments:
        runs: one dict per run with `policy`, `reward_model`, `seed`, `is_ground_truth`, `predictors`
            (`predictors_from_card`) and `outcomes` (`run_outcomes`).
        budgets: the outcome budgets; primary_outcome: the gold outcome rankings and claims use.
        include_ground_truth: whether the ground truth's run enters the paper-set correlations.
        n_resamples, seed: the correlation and seed bootstraps.
        roles: RM name -> its `role` in the config; transformed: names of RMs with a reward transform.
        exclude: candidate RMs left out of the paper-set correlations (and so of claim (b)); still ranked, in
            claims (a) and (c), and in the all-RMs correlations and claim (d).
        forecast: the primary forecast claim (d) judges.

    Returns:
        `{"points", "correlations" (the paper's set), "correlations_all_rms", "rankings", "claims"}`.
    """
    names = outcome_names(budgets)
    points = aggregate_points(runs, names)
    ci = [primary_outcome, proxy_counterpart(primary_outcome)]
    corr = correlations(points, names, ci_outcomes=ci, include_ground_truth=include_ground_truth,
                        n_resamples=n_resamples, seed=seed, exclude=exclude)
    corr_all = correlations(points, names, ci_outcomes=ci, include_ground_truth=True, n_resamples=n_resamples,
                            seed=seed)
    ranks = rankings(points, primary_outcome)
    perfect = find_perfect_low_variance(points, roles, transformed)
    policies = list(dict.fromkeys(p["policy"] for p in points))
    paper_set = contest_scopes(scope_points(points, include_ground_truth, exclude), primary_outcome)
    every_rm = contest_scopes(scope_points(points, include_ground_truth=True), primary_outcome)
    claims = [
        claim_low_variance_slower(points, perfect, primary_outcome),
        claim_variance_beats_offpolicy(paper_set, every_rm, primary_outcome, rm_set=describe_set(
            include_ground_truth, exclude), n_resamples=n_resamples, seed=seed),
        claim_best_differs(points, ranks),
        claim_forecast_ranks_best({pol: every_rm[pol] for pol in policies}, forecast, primary_outcome,
                                  n_resamples=n_resamples, seed=seed),
    ]
    return {"points": points, "correlations": corr, "correlations_all_rms": corr_all, "rankings": ranks,
            "claims": claims}
