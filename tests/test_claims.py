"""The claims judged against seed noise: held, not held, or undetermined on data built to sit inside the noise."""

from __future__ import annotations

import numpy as np
from scipy import stats

from rmteach.study import claims as C


def _point(policy, rm, values, *, acc=0.7, var=0.5, gt=False):
    v = np.asarray(values, dtype=float)
    return {"policy": policy, "reward_model": rm, "is_ground_truth": gt,
            "predictors": {"onpolicy_accuracy": acc, "reward_variance": var},
            "outcomes": {"o": {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None,
                               "values": [float(x) for x in v]}}}


def _ranking(points):
    pol = {}
    for p in points:
        if not p["is_ground_truth"]:
            pol.setdefault(p["policy"], []).append(p)
    table, best = {}, {}
    for policy, pts in pol.items():
        pts = sorted(pts, key=lambda p: -p["outcomes"]["o"]["mean"])
        table[policy] = [{"rank": i + 1, "reward_model": p["reward_model"], "mean": p["outcomes"]["o"]["mean"],
                          "std": p["outcomes"]["o"]["std"]} for i, p in enumerate(pts)]
        best[policy] = pts[0]["reward_model"]
    return {"outcome": "o", "policies": table, "best": best}


def test_claim_a_is_undetermined_inside_the_noise():
    perfect = _point("p", "perfect", [0.10, 0.30, 0.20], acc=1.0, var=0.05)
    close = _point("p", "rm", [0.15, 0.35, 0.25])  # faster by 0.05, seed spread 0.1: 2 SE = 0.163
    far = _point("p", "rm", [0.50, 0.60, 0.70])
    assert C.claim_low_variance_slower([perfect, close], {"p": "perfect"}, "o")["status"] == C.UNDETERMINED
    held = C.claim_low_variance_slower([perfect, far], {"p": "perfect"}, "o")
    assert held["status"] == C.HELD and abs(held["evidence"]["p"]["difference"] - 0.4) < 1e-12
    slower = _point("p", "rm", [-0.6, -0.5, -0.4])
    assert C.claim_low_variance_slower([perfect, slower], {"p": "perfect"}, "o")["status"] == C.NOT_HELD


def test_claim_c_needs_a_crossing_beyond_noise():
    # The best differs by a margin inside the noise (seed std 0.1, margins 0.02): undetermined, as with the
    # toy world's old (c) "held" on a margin of 0.002 against a seed std of 0.007.
    pts = [_point("p", "x", [0.50, 0.60, 0.70]), _point("p", "y", [0.48, 0.58, 0.68]),
           _point("q", "x", [0.48, 0.58, 0.68]), _point("q", "y", [0.50, 0.60, 0.70])]
    c = C.claim_best_differs(pts, _ranking(pts))
    assert c["evidence"]["best"] == {"p": "x", "q": "y"} and c["status"] == C.UNDETERMINED
    # The same order with margins of 0.3 under both policies: a resolved crossing.
    pts = [_point("p", "x", [0.90, 1.00, 1.10]), _point("p", "y", [0.48, 0.58, 0.68]),
           _point("q", "x", [0.18, 0.28, 0.38]), _point("q", "y", [0.50, 0.60, 0.70])]
    c = C.claim_best_differs(pts, _ranking(pts))
    assert c["status"] == C.HELD and c["evidence"]["resolved_crossings"] == [["p", "q"]]


def _d_scope(forecast, rival, values):
    return {"predictors": {"gold_rate": np.asarray(forecast, float), "reward_variance": np.asarray(rival, float),
                           "onpolicy_accuracy": None, "offpolicy_accuracy": None, "variance_and_accuracy": None},
            "values": np.asarray(values, float), "reward_models": [f"r{i}" for i in range(len(forecast))]}


def test_claim_d_held_not_held_and_inside_the_noise():
    rng = np.random.default_rng(0)
    truth = np.arange(6.0)
    clean = truth[:, None] + rng.normal(0, 0.05, size=(6, 4))  # seeds agree: the ranking is resolved
    scrambled = [0, 5, 1, 4, 2, 3]
    held = C.claim_forecast_ranks_best({"p": _d_scope(truth, scrambled, clean)}, "gold_rate", "o",
                                       n_resamples=200, seed=0)
    assert held["status"] == C.HELD and held["evidence"]["p"]["spearman"]["gold_rate"] == 1.0
    lost = C.claim_forecast_ranks_best({"p": _d_scope(scrambled, truth, clean)}, "gold_rate", "o",
                                       n_resamples=200, seed=0)
    assert lost["status"] == C.NOT_HELD
    # RMs whose true outcomes are nearly equal and seeds noisy: neither predictor is resolvably better.
    noisy = 0.01 * truth[:, None] + rng.normal(0, 1.0, size=(6, 3))
    inside = C.claim_forecast_ranks_best({"p": _d_scope(truth, truth[::-1], noisy)}, "gold_rate", "o",
                                         n_resamples=200, seed=0)
    assert inside["status"] == C.UNDETERMINED


def test_claim_a_allows_for_picking_the_fastest_of_several():
    perfect = _point("p", "perfect", [0.0, 0.1, 0.2], acc=1.0, var=0.05)
    fast = _point("p", "fast", [0.3, 0.4, 0.5])  # 0.3 ahead; seed std 0.1 each: se 0.0816, Welch df 4
    se = np.sqrt(2 * 0.01 / 3)
    alone = C.claim_low_variance_slower([perfect, fast], {"p": "perfect"}, "o")
    assert alone["status"] == C.HELD  # 0.3 > t_4(0.975) se = 0.227
    assert abs(alone["evidence"]["p"]["margin"] - stats.t.ppf(0.975, 4) * se) < 1e-9
    # The same RM picked as the fastest of five (four others as slow as the perfect RM): t_4(0.995) se = 0.376.
    others = [_point("p", f"slow{i}", [0.0, 0.1, 0.2]) for i in range(4)]
    picked = C.claim_low_variance_slower([perfect, fast, *others], {"p": "perfect"}, "o")
    assert picked["status"] == C.UNDETERMINED and picked["evidence"]["p"]["fastest_less_accurate"] == "fast"
    assert abs(picked["evidence"]["p"]["margin"] - stats.t.ppf(1 - 0.025 / 5, 4) * se) < 1e-9
    assert picked["evidence"]["p"]["resolved_faster"] == []
