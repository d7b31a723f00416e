"""The study's pure analysis: points, correlations, rankings and claims, checked against hand computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rmteach.study import analysis as A
from rmteach.study import claims as C


def test_predictors_prefer_agreement_with_ground_truth():
    card = {"reward_variance": {"mean": 0.5}, "onpolicy_accuracy": 0.6, "offpolicy_accuracy": 0.9,
            "offpolicy_accuracy_vs_gold": 0.7}
    none = dict.fromkeys(A.FORECASTS)  # a report card without a ground truth has no forecast
    assert A.predictors_from_card(card) == {"reward_variance": 0.5, "onpolicy_accuracy": 0.6,
                                            "offpolicy_accuracy": 0.7, "on_off_accuracy": pytest.approx(0.65), **none}
    card["forecast"] = {"gold_rate": {"value": 0.3, "ci95": [0.2, 0.4]}, "lookahead": {"value": 0.1},
                        "best_of_k_gold_lift": {"value": 0.5}, "gradient_alignment": None}
    got = A.predictors_from_card(card)
    assert (got["gold_rate"], got["lookahead"], got["best_of_k_gold_lift"], got["gradient_alignment"]) == (
        0.3, 0.1, 0.5, None)
    card["offpolicy_accuracy_vs_gold"] = None
    assert A.predictors_from_card(card)["offpolicy_accuracy"] == 0.9


# ----------------------------------------------------------------------------------------------------------
# Points, correlations, rankings

RATES = {"r1": 1.0, "r2": 3.0, "r3": 2.0, "r4": 5.0, "r5": 4.0}
VARIANCE = {"r1": 0.1, "r2": 0.4, "r3": 0.2, "r4": 0.9, "r5": 0.3}  # ranks 1 4 2 5 3 vs rates 1 3 2 5 4
ONACC = {"r1": 0.9, "r2": 0.7, "r3": 0.8, "r4": 0.5, "r5": 0.6}
OFFACC = {"r1": 0.6, "r2": 0.7, "r3": 0.9, "r4": 0.8, "r5": 0.5}


def _runs(policies=("A",), seeds=(0, 1), rates=RATES, gt=None, b_bump=0.5):
    runs = []
    for pol, (rm, rate), seed in itertools.product(policies, rates.items(), seeds):
        bump = b_bump if pol == "B" and rm == "r1" else 0.0  # r1 is much better for B
        inc = rate + bump + 0.1 * seed  # per-seed noise
        runs.append({
            "policy": pol, "reward_model": rm, "seed": seed, "is_ground_truth": rm == gt,
            "predictors": {"reward_variance": VARIANCE.get(rm, 0.05), "onpolicy_accuracy": ONACC.get(rm, 1.0),
                           "offpolicy_accuracy": OFFACC.get(rm, 1.0),
                           "on_off_accuracy": (ONACC.get(rm, 1.0) + OFFACC.get(rm, 1.0)) / 2},
            "outcomes": {"gold_increase@1": inc, "gold_auc": inc / 2, "proxy_increase@1": 2 * inc, "proxy_auc": inc},
        })
    return runs


OUTS = ["gold_increase@1", "gold_auc", "proxy_increase@1", "proxy_auc"]


def test_aggregate_points_mean_and_std_over_seeds():
    pts = A.aggregate_points(_runs(seeds=(0, 1, 2)), OUTS)
    assert [p["reward_model"] for p in pts] == list(RATES)
    o = pts[1]["outcomes"]["gold_increase@1"]  # r2: 3.0, 3.1, 3.2
    assert o["values"] == pytest.approx([3.0, 3.1, 3.2])
    assert o["mean"] == pytest.approx(3.1) and o["std"] == pytest.approx(0.1)
    one = A.aggregate_points(_runs(seeds=(4,)), OUTS)
    assert one[0]["outcomes"]["gold_increase@1"]["std"] is None and one[0]["seeds"] == [4]


def _ranks(v):
    """Average ranks (1-based), ties sharing the mean of their positions."""
    v = np.asarray(v, dtype=float)
    return np.array([1 + np.sum(v < a) + (np.sum(v == a) - 1) / 2 for a in v])


def _spearman_by_hand(x, y):
    """Pearson correlation of average ranks (equals 1 - 6 sum d^2 / (n (n^2 - 1)) without ties)."""
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return np.sum(rx * ry) / np.sqrt(np.sum(rx**2) * np.sum(ry**2))


def test_correlations_match_hand_formulas():
    pts = A.aggregate_points(_runs(), OUTS)
    corr = A.correlations(pts, OUTS, ci_outcomes=["gold_increase@1"], include_ground_truth=False, n_resamples=200, seed=0)
    assert list(corr["scopes"]) == ["A"]  # one policy: no pooled scope
    s = corr["scopes"]["A"]
    assert s["n"] == 5 and s["note"] is None
    y = np.array([RATES[k] + 0.05 for k in RATES])  # mean over seeds 0 and 1
    x = np.array([VARIANCE[k] for k in RATES])
    cell = s["table"]["reward_variance"]["gold_increase@1"]
    assert cell["spearman"]["value"] == pytest.approx(_spearman_by_hand(x, y))  # 1 - 6*2/120 = 0.9
    assert cell["spearman"]["value"] == pytest.approx(0.9)
    xm, ym = x - x.mean(), y - y.mean()
    assert cell["pearson"]["value"] == pytest.approx(np.sum(xm * ym) / np.sqrt(np.sum(xm**2) * np.sum(ym**2)))
    # Kendall: 10 pairs, one discordant (r2/r5) -> (9 - 1) / 10
    assert cell["kendall"]["value"] == pytest.approx(0.8)
    lo, hi = cell["spearman"]["ci95"]
    assert -1.0 <= lo <= hi <= 1.0
    # Outcomes outside ci_outcomes get the value without a CI.
    assert s["table"]["reward_variance"]["gold_auc"]["spearman"]["ci95"] is None
    assert s["table"]["reward_variance"]["gold_auc"]["spearman"]["value"] == pytest.approx(0.9)
    # variance & accuracy: mean of min-max scaled variance and on-policy accuracy, computed here by hand.
    acc = np.array([ONACC[k] for k in RATES])
    comb = np.round(((x - 0.1) / 0.8 + (acc - 0.5) / 0.4) / 2, 9)  # .5 .4375 .4375 .5 .25: two exact ties
    got = s["table"]["variance_and_accuracy"]["gold_increase@1"]["spearman"]["value"]
    assert got == pytest.approx(_spearman_by_hand(comb, y))
    assert got == pytest.approx(-1.5 / np.sqrt(90))  # ranks (4.5 2.5 2.5 4.5 1) vs (1 3 2 5 4), by hand


def test_correlations_need_three_rms_and_count_the_ground_truth_only_when_asked():
    pts = A.aggregate_points(_runs(rates={"r1": 1.0, "r2": 2.0, "gold": 3.0}, gt="gold"), OUTS)
    corr = A.correlations(pts, OUTS, ci_outcomes=[], include_ground_truth=False, n_resamples=0, seed=0)
    s = corr["scopes"]["A"]
    assert s["n"] == 2 and "at least 3" in s["note"]
    assert all(c["value"] is None for c in s["table"]["reward_variance"]["gold_increase@1"].values())
    corr = A.correlations(pts, OUTS, ci_outcomes=[], include_ground_truth=True, n_resamples=0, seed=0)
    assert corr["scopes"]["A"]["n"] == 3 and corr["scopes"]["A"]["note"] is None
    # variance 0.1, 0.4, 0.05 vs outcome 1, 2, 3: ranks (2,3,1) vs (1,2,3) -> 1 - 6*(1+1+4)/24 = -0.5
    v = corr["scopes"]["A"]["table"]["reward_variance"]["gold_increase@1"]["spearman"]["value"]
    assert v == pytest.approx(-0.5)


def test_excluded_rms_leave_the_correlations_but_stay_ranked():
    pts = A.aggregate_points(_runs(policies=("A", "B")), OUTS)
    corr = A.correlations(pts, OUTS, ci_outcomes=[], include_ground_truth=False, n_resamples=0, seed=0,
                          exclude=["r4"])
    assert corr["excluded"] == ["r4"]
    assert corr["scopes"]["A"]["n"] == 4 and "A/r4" not in corr["scopes"]["pooled"]["reward_models"]
    # without r4 (the highest variance and rate), variance 0.1 .4 .2 .3 vs rate 1 3 2 4 (+0.05): ranks 1 4 2 3 vs
    # 1 3 2 4 -> 1 - 6 * (0 + 1 + 0 + 1) / 60 = 0.8
    v = corr["scopes"]["A"]["table"]["reward_variance"]["gold_increase@1"]["spearman"]["value"]
    assert v == pytest.approx(0.8)
    out = A.analyze(_runs(policies=("A", "B")), budgets=[1.0], primary_outcome="gold_increase@1",
                    include_ground_truth=False, n_resamples=0, seed=0, roles={}, transformed=set(), exclude=["r4"])
    assert [r["reward_model"] for r in out["rankings"]["policies"]["A"]][0] == "r4"  # still ranked (first)
    assert out["claims"][1]["evidence"]["A"]["n"] == 4


def test_pooled_scope_over_policies():
    pts = A.aggregate_points(_runs(policies=("A", "B")), OUTS)
    corr = A.correlations(pts, OUTS, ci_outcomes=[], include_ground_truth=False, n_resamples=0, seed=0)
    assert list(corr["scopes"]) == ["A", "B", "pooled"]
    assert corr["scopes"]["pooled"]["n"] == 10
    assert corr["scopes"]["pooled"]["reward_models"][:2] == ["A/r1", "A/r2"]


def test_rankings_order_ties_and_reference():
    rates = {"r1": 2.0, "r2": 2.0, "r3": 1.0, "gold": 9.0}
    ranks = A.rankings(A.aggregate_points(_runs(rates=rates, gt="gold"), OUTS), "gold_increase@1")
    rows = ranks["policies"]["A"]
    assert [(r["rank"], r["reward_model"]) for r in rows] == [(1, "r1"), (2, "r2"), (3, "r3"), (None, "gold")]
    assert ranks["best"] == {"A": "r1"}  # the ground truth is a reference, never "best"


# ----------------------------------------------------------------------------------------------------------
# Claims


def _claims(runs, roles=None, transformed=frozenset(), n_resamples=0):
    return A.analyze(runs, budgets=[1.0], primary_outcome="gold_increase@1", include_ground_truth=False,
                     n_resamples=n_resamples, seed=0, roles=roles or {}, transformed=set(transformed))["claims"]


def _with_perfect(rate):
    runs = _runs(policies=("A", "B"), rates={**RATES, "perfect": rate})
    for r in runs:
        if r["reward_model"] == "perfect":
            r["predictors"].update(reward_variance=0.01, onpolicy_accuracy=1.0)
    return runs


def test_claim_a_from_data():
    a = _claims(_with_perfect(0.5), transformed={"perfect"})[0]
    assert a["id"] == "a" and a["status"] == C.HELD
    e = a["evidence"]["A"]
    assert e["perfect"] == "perfect" and e["n_less_accurate"] == 5 and e["n_faster"] == 5
    assert e["fastest_less_accurate"] == "r4" and e["fastest_value"] == pytest.approx(5.05)
    # The perfect RM fastest everywhere: not held.
    assert _claims(_with_perfect(9.0), transformed={"perfect"})[0]["status"] == C.NOT_HELD
    # Without a transform (and no role) nothing is the perfect low-variance RM.
    assert _claims(_with_perfect(0.5))[0]["status"] == C.UNDETERMINED
    # A role marks it even without a transform.
    assert _claims(_with_perfect(0.5), roles={"perfect": "perfect_low_variance"})[0]["status"] == C.HELD


def test_claim_b_compares_signed_spearman_per_policy():
    b = _claims(_runs(policies=("A", "B")), n_resamples=200)[1]
    # A: variance rho 0.9; off-policy: ranks of OFFACC (1,2,5,4,... ) computed by hand below.
    y = np.array([RATES[k] + 0.05 for k in RATES])
    off = np.array([OFFACC[k] for k in RATES])
    assert b["evidence"]["A"]["offpolicy_spearman"] == pytest.approx(_spearman_by_hand(off, y))
    assert b["evidence"]["A"]["variance_spearman"] == pytest.approx(0.9)
    # Seeds shift every RM by at most 0.1, rates are 1 apart: no resample changes the ranking (P = 1).
    assert b["status"] == C.HELD and "pooled" in b["evidence"] and b["evidence"]["A"]["p_higher"] == {
        "offpolicy_accuracy": 1.0}
    assert "the candidate RMs, the ground truth's own run not counted" in b["statement"]
    assert set(b["evidence_all_rms"]) == {"A", "B", "pooled"} and b["all_rms_status"] == C.HELD
    # Without a seed bootstrap nothing is judged beyond noise.
    assert _claims(_runs(policies=("A", "B")))[1]["status"] == C.UNDETERMINED
    # Make off-policy accuracy track the outcome exactly: variance no longer wins.
    runs = _runs()
    for r in runs:
        r["predictors"]["offpolicy_accuracy"] = RATES[r["reward_model"]]
    assert _claims(runs, n_resamples=200)[1]["status"] == C.NOT_HELD
    # Two RMs: undefined.
    assert _claims(_runs(rates={"r1": 1.0, "r2": 2.0}), n_resamples=200)[1]["status"] == C.UNDETERMINED


def test_claim_c_best_differs_or_says_why_not():
    runs = _runs(policies=("A", "B"), rates={"r1": 4.0, "r2": 1.0, "r3": 5.0}, b_bump=2.0)
    c = _claims(runs)[2]
    assert c["evidence"]["best"] == {"A": "r3", "B": "r1"} and c["status"] == C.HELD  # r1 + 2.0 bump on B
    # Margins of 0.2 and 0.5 against a seed std of 0.07 (2 seeds, df 2; the best of 2 rivals): 4.1 and 8.1 SEs,
    # beyond 2 SEs but not beyond the t test with its allowance (6.2 SEs) on both sides.
    runs = _runs(policies=("A", "B"), rates={"r1": 4.8, "r2": 1.0, "r3": 5.0})
    c = _claims(runs)[2]
    assert c["evidence"]["best"] == {"A": "r3", "B": "r1"} and c["status"] == C.UNDETERMINED
    runs = _runs(policies=("A", "B"), rates={"r1": 1.0, "r2": 2.0, "r4": 5.0})
    c = _claims(runs)[2]
    assert c["status"] == C.NOT_HELD
    assert c["summary"].startswith("r4 is the best teacher for every policy, and it induces the highest reward variance")
    assert c["summary"].split("; ")[1].startswith("A: best r4 5.050 (runner-up r2 2.050, margin 3.000")
    assert c["evidence"]["policies"]["A"]["margin"] == pytest.approx(3.0)
    assert _claims(_runs())[2]["status"] == C.UNDETERMINED  # one policy
