"""A study's points, pure: one per (policy, RM), its predictors and its outcomes averaged over seeds.

`Point` is the one shape `analysis`, `claims` and `report.plots` pass around (and study.json's `points` holds).
"""

from __future__ import annotations

from typing import Any, Sequence, TypedDict

import numpy as np


class OutcomeSummary(TypedDict):
    """One outcome of one (policy, RM) over its seeds."""

    mean: float
    std: float | None  # ddof=1; None with one seed
    values: list[float]  # per seed, in seed order


class Point(TypedDict):
    """One (policy, RM): what `evaluate` measured before training and what training did, over seeds."""

    policy: str
    reward_model: str
    is_ground_truth: bool
    seeds: list[int]
    predictors: dict[str, float | None]  # `analysis.PREDICTORS` names (from `analysis.predictors_from_card`)
    outcomes: dict[str, OutcomeSummary]  # `outcomes.outcome_names`


def aggregate_points(runs: Sequence[dict[str, Any]], outcomes: Sequence[str]) -> list[Point]:
    """Group runs by (policy, RM), in first-seen order; average each outcome over seeds.

    Arguments:
        runs: dicts with `policy`, `reward_model`, `seed`, `is_ground_truth`, `predictors`, `outcomes`.
        outcomes: the outcome names to aggregate.

    Returns:
        One `Point` per (policy, RM).
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["policy"], r["reward_model"]), []).append(r)
    points: list[Point] = []
    for (policy, rm), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        agg: dict[str, OutcomeSummary] = {}
        for name in outcomes:
            v = np.asarray([r["outcomes"][name] for r in rs], dtype=np.float64)  # (n_seeds,)
            agg[name] = {
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if v.size > 1 else None,
                "values": [float(x) for x in v],
            }
        points.append({
            "policy": policy,
            "reward_model": rm,
            "is_ground_truth": bool(rs[0]["is_ground_truth"]),
            "seeds": [r["seed"] for r in rs],
            "predictors": dict(rs[0]["predictors"]),
            "outcomes": agg,
        })
    return points


def seed_matrix(points: Sequence[Point], outcome: str) -> np.ndarray:
    """(n_points, n_seeds) per-seed values of `outcome`, seeds cut to the fewest any point has."""
    values = [p["outcomes"][outcome]["values"] for p in points]
    s = min((len(v) for v in values), default=0)
    return np.asarray([v[:s] for v in values], dtype=np.float64).reshape(len(values), s)
