"""The claims in simulated studies with realistic seed noise: under null worlds (the claim is false) each claim is
held in at most 5% of studies, and with a real effect it is held most of the time.

A world is a (n_rms, n_seeds) table of outcomes per policy: true means plus Gaussian seed noise whose std differs
per RM (0.5 to 2, as a high-variance RM's runs spread more). The old rules are measured on the same worlds
beside the new ones, to show what the allowances fix (tests that could not fail would show nothing).
"""

from __future__ import annotations

import numpy as np
import pytest

from rmteach.study import claims as C
from rmteach.study.noise import split_half_reliability
from rmteach.core.metrics import correlation_rows

MAX_FALSE_HELD = 0.05


def _outcomes(rng, means, n_seeds):
    """(n_rms, n_seeds) outcomes: each RM's true mean plus seed noise of its own std (uniform 0.5 to 2)."""
    sd = rng.uniform(0.5, 2.0, size=len(means))
    return np.asarray(means, float)[:, None] + sd[:, None] * rng.normal(size=(len(means), n_seeds))


def _point(policy, rm, values, *, acc=0.6, var=0.5):
    v = np.asarray(values, float)
    return {"policy": policy, "reward_model": rm, "is_ground_truth": False, "seeds": list(range(v.size)),
            "predictors": {"onpolicy_accuracy": acc, "reward_variance": var},
            "outcomes": {"o": {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "values": v.tolist()}}}


# ----------------------------------------------------------------------------------------------------------
# (a) the perfect RM against the fastest of m less accurate ones


def _claim_a_rates(n_seeds, effect, n_studies=500, m=5, seed=0):
    """(new rule, old rule) held rates; `effect` is the true lead of one less accurate RM (0: the null)."""
    rng = np.random.default_rng(seed)
    new = old = 0
    for _ in range(n_studies):
        v = _outcomes(rng, [0.0] + [effect] + [0.0] * (m - 1), n_seeds)  # row 0: the perfect RM
        pts = [_point("p", "perfect", v[0], acc=1.0, var=0.05)] + [_point("p", f"r{i}", v[i]) for i in range(1, m + 1)]
        new += C.claim_low_variance_slower(pts, {"p": "perfect"}, "o")["status"] == C.HELD
        best = 1 + int(np.argmax(v[1:].mean(axis=1)))  # the old rule: the fastest at 2 normal SEs, no allowance
        se = np.sqrt(v[best].var(ddof=1) / n_seeds + v[0].var(ddof=1) / n_seeds)
        old += v[best].mean() - v[0].mean() > 2 * se
    return new / n_studies, old / n_studies


@pytest.mark.slow
@pytest.mark.parametrize("n_seeds", [2, 3])
def test_claim_a_false_held_rate_under_equal_rms(n_seeds):
    new, old = _claim_a_rates(n_seeds, effect=0.0)
    assert new <= MAX_FALSE_HELD
    assert old > 0.12  # the old rule: 17% with 3 seeds (the issue), 24% with 2


def test_claim_a_is_held_with_a_real_lead():
    assert _claim_a_rates(6, effect=4.0)[0] > 0.5


# ----------------------------------------------------------------------------------------------------------
# (c) two policies whose best teachers cross


def _claim_c_rate(n_seeds, lead, n_studies=400, m=5, seed=0):
    """Held rate; under p RM r0 leads by `lead`, under q RM r1 does (0: every RM equal under both)."""
    rng = np.random.default_rng(seed)
    held = 0
    for _ in range(n_studies):
        pts = []
        for j, policy in enumerate("pq"):
            means = np.zeros(m)
            means[j] = lead
            v = _outcomes(rng, means, n_seeds)
            pts += [_point(policy, f"r{i}", v[i]) for i in range(m)]
        held += C.claim_best_differs(pts, _ranking(pts))["status"] == C.HELD
    return held / n_studies


def _ranking(points):
    ranks = {"outcome": "o", "policies": {}, "best": {}}
    for policy in dict.fromkeys(p["policy"] for p in points):
        mine = sorted((p for p in points if p["policy"] == policy), key=lambda p: -p["outcomes"]["o"]["mean"])
        ranks["policies"][policy] = [{"rank": i + 1, "reward_model": p["reward_model"],
                                      "mean": p["outcomes"]["o"]["mean"], "std": p["outcomes"]["o"]["std"]}
                                     for i, p in enumerate(mine)]
        ranks["best"][policy] = mine[0]["reward_model"]
    return ranks


@pytest.mark.parametrize("n_seeds", [2, 3])
def test_claim_c_false_held_rate_under_equal_rms(n_seeds):
    assert _claim_c_rate(n_seeds, lead=0.0) <= MAX_FALSE_HELD


def test_claim_c_is_held_with_a_real_crossing():
    assert _claim_c_rate(6, lead=5.0, n_studies=100) > 0.5


# ----------------------------------------------------------------------------------------------------------
# (b) and (d): one predictor's Spearman against others', judged by the seed bootstrap


def _swapped(rng, n, k):
    """The ranks 0..n-1 with k disjoint adjacent pairs swapped: Spearman 1 - 12 k / (n (n^2 - 1)) with 0..n-1."""
    x = np.arange(n, dtype=float)
    for s in 2 * rng.choice((n - 1) // 2 + 1, size=k, replace=False):
        x[[s, s + 1]] = x[[s + 1, s]]
    return x


def _contest_rate(n_seeds, which, *, informative=False, signal=1.0, n_studies=400, n=8, seed=0):
    """(held rate, the old rule's rate) of claim (b) (`which` = "b") or (d). Null: the champion and its best
    rival are equally informative (the same number of swaps away from the true order); `informative`: the
    champion is the true order and its rivals are two swaps further away. The old rule: point estimates."""
    rng = np.random.default_rng(seed)
    held = old = 0
    for k in range(n_studies):
        v = _outcomes(rng, np.linspace(0.0, 3.0 * signal, n), n_seeds)  # true outcomes 0..3 signal, seed std 0.5..2
        champion = _swapped(rng, n, 0 if informative else 2)
        rival = _swapped(rng, n, 2)
        champion_name = "reward_variance" if which == "b" else "gold_rate"
        if which == "b":
            x = {"reward_variance": champion, "offpolicy_accuracy": rival}
            e = C.contest({"predictors": x, "values": v, "reward_models": list(range(n))}, "reward_variance",
                          ("offpolicy_accuracy",), 200, k)
        else:  # the other rivals: no better than the best one
            x = {"gold_rate": champion, "reward_variance": rival, "onpolicy_accuracy": _swapped(rng, n, 3),
                 "offpolicy_accuracy": rng.permutation(n).astype(float), "variance_and_accuracy": _swapped(rng, n, 2)}
            e = C.contest({"predictors": x, "values": v, "reward_models": list(range(n))}, "gold_rate", C.RIVALS,
                          200, k)
        held += e["status"] == C.HELD
        old += all(e["spearman"][champion_name] > r for name, r in e["spearman"].items() if name != champion_name)
    return held / n_studies, old / n_studies


@pytest.mark.slow
@pytest.mark.parametrize("which", ["b", "d"])
def test_contested_claims_false_held_rate_with_equally_informative_predictors(which):
    new, old = _contest_rate(3, which)
    assert new <= MAX_FALSE_HELD
    if which == "b":
        assert old > 0.2  # the old rule (b), point estimates compared: held whenever variance's came out higher


@pytest.mark.slow
@pytest.mark.parametrize("which", ["b", "d"])
@pytest.mark.parametrize("n_seeds", [2, 3, 6])
@pytest.mark.parametrize("signal", [0.3, 3.0])
def test_contested_claims_false_held_rate_sweep(which, n_seeds, signal):
    assert _contest_rate(n_seeds, which, signal=signal, n_studies=600, seed=1)[0] <= MAX_FALSE_HELD


@pytest.mark.parametrize("which", ["b", "d"])
def test_contested_claims_are_held_when_the_champion_is_better(which):
    assert _contest_rate(6, which, informative=True, signal=10.0, n_studies=100)[0] > 0.5


# ----------------------------------------------------------------------------------------------------------
# The reliability: sqrt(reliability) tracks the Spearman of a predictor that knows the true means


@pytest.mark.parametrize("n_seeds", [3, 6])
@pytest.mark.parametrize("sd", [0.25, 0.5, 1.0])
def test_reliability_tracks_a_predictor_that_knows_the_true_means(n_seeds, sd):
    rng = np.random.default_rng(0)
    means = np.linspace(0.0, 1.0, 8)  # 8 RMs
    values = means[None, :, None] + rng.normal(0.0, sd, size=(300, 8, n_seeds))  # 300 studies
    oracle = correlation_rows(np.broadcast_to(means, (300, 8)), values.mean(axis=2), "spearman").mean()
    rel = [split_half_reliability(v) for v in values]
    ceiling = np.mean([r["ceiling"] for r in rel])
    raw = np.mean([r["split_half"] for r in rel])
    # Within 0.1 on average over studies (measured here: the ceiling 0.002 to 0.087 below the true-means
    # predictor, the most at 6 seeds and sd 1; the uncorrected split-half 0.10 to 0.39 below).
    assert abs(ceiling - oracle) <= 0.1
    assert raw < oracle - 0.05  # the uncorrected split-half reads well below what a predictor can reach
