"""Seed noise: the split-half reliability, resolved differences and the seed bootstrap, checked by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from rmteach.study.noise import LEVEL, resolved_difference, seed_bootstrap, spearman_brown, split_half_reliability


def test_split_half_reliability_by_hand():
    rng = np.random.default_rng(0)
    values = np.arange(5.0)[:, None] + rng.normal(0, 1.5, size=(5, 4))  # 5 RMs x 4 seeds, noisy
    # The 3 distinct 2-vs-2 splits of 4 seeds, each computed directly.
    splits = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    want = [stats.spearmanr(values[:, a].mean(1), values[:, b].mean(1)).statistic for a, b in splits]
    got = split_half_reliability(values)
    assert got["n_splits"] == 3 and got["split_half"] == pytest.approx(np.mean(want))
    assert got["min"] == pytest.approx(min(want)) and got["max"] == pytest.approx(max(want))
    r = np.mean(want)  # equal halves: Spearman-Brown is 2 r / (1 + r)
    assert got["reliability"] == pytest.approx(2 * r / (1 + r))
    assert got["ceiling"] == pytest.approx(np.sqrt(2 * r / (1 + r)))
    # 3 seeds: 1 vs 2, three splits; 6 seeds: the ten 3-vs-3 splits.
    assert split_half_reliability(values[:, :3])["n_splits"] == 3
    assert split_half_reliability(np.tile(values, 2)[:, :6])["n_splits"] == len(list(itertools.combinations(range(6), 3))) // 2


@pytest.mark.parametrize("rho", [0.1, 0.4, 0.8])
@pytest.mark.parametrize("h1, h2", [(1, 1), (1, 2), (2, 3), (3, 3)])
def test_spearman_brown_inverts_the_classical_formula(rho, h1, h2):
    """From one seed's reliability rho, the correlation of means over h1 and h2 seeds is sqrt(R_h1 R_h2)."""
    def rel(h):
        return h * rho / (1 + (h - 1) * rho)

    r = np.sqrt(rel(h1) * rel(h2))
    for s in (2, 3, 6):
        assert spearman_brown(r, h1, h2, s) == pytest.approx(rel(s))
    assert spearman_brown(-0.3, h1, h2, 3) == 0.0 and spearman_brown(1.0, h1, h2, 4) == pytest.approx(1.0)


def test_reliability_is_low_for_pure_noise_and_undefined_without_seeds():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(200, 8, 6))  # 200 studies of RMs that do not differ: the halves disagree
    rel = np.array([split_half_reliability(v)["reliability"] for v in noise])
    assert np.median(rel) < 0.1 and rel.mean() < 0.25  # often 0 (halves disagree), sometimes high by chance
    noise = noise[0]
    assert split_half_reliability(noise[:, :1])["reliability"] is None  # one seed: no split
    assert split_half_reliability(noise[:2])["reliability"] is None  # two RMs: no rank correlation
    assert split_half_reliability(np.ones((4, 3)))["reliability"] is None  # no half ranks the RMs


def test_resolved_difference_is_a_one_sided_welch_t_test():
    a, b = [1.0, 1.3, 1.1, 1.2], [0.9, 1.0, 1.2, 0.8]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 4
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 3)
    got = resolved_difference(a, b)
    assert got["difference"] == pytest.approx(np.mean(a) - np.mean(b)) and got["se"] == pytest.approx(se)
    assert got["df"] == pytest.approx(df) and got["margin"] == pytest.approx(stats.t.ppf(1 - LEVEL, df) * se)
    # scipy's Welch test, one-sided: resolved exactly when its p-value is below LEVEL
    p = stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
    assert got["resolved"] == (p < LEVEL)
    # Picking among 5 differences divides the level by 5: a wider margin.
    assert resolved_difference(a, b, comparisons=5)["margin"] == pytest.approx(stats.t.ppf(1 - LEVEL / 5, df) * se)
    assert resolved_difference([5.0, 5.1], [1.0, 1.1])["resolved"]
    assert not resolved_difference([1.0, 2.0], [1.1, 1.9])["resolved"]  # inside the noise
    assert resolved_difference([3.0], [1.0]) == {"difference": 2.0, "se": None, "df": None, "margin": None,
                                                 "resolved": False}
    assert resolved_difference([3.0, 3.0], [1.0, 1.0])["resolved"]  # seeds that do not vary


def test_welch_margin_matches_scipy_at_the_edge():
    # A difference placed just inside and just outside the one-sided t margin (3 seeds each, equal spread).
    base = np.array([0.0, 0.1, 0.2])
    se = np.sqrt(2 * np.var(base, ddof=1) / 3)
    margin = stats.t.ppf(1 - LEVEL, 4) * se  # equal variances and sizes: Welch df = 4
    for shift, want in ((0.99 * margin, False), (1.01 * margin, True)):
        assert resolved_difference(base + shift, base)["resolved"] == want
        assert (stats.ttest_ind(base + shift, base, equal_var=False, alternative="greater").pvalue < LEVEL) == want


def test_seed_bootstrap_draws_each_points_own_seeds():
    values = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    boot = seed_bootstrap(values, 500, seed=0)
    assert boot.shape == (500, 2)
    assert (boot[:, 0] == 0).all()
    assert abs(boot[:, 1].mean() - 2.0) < 0.1  # centred on the mean over seeds
    # ... and spread like the mean's standard error, std(seeds) / sqrt(3) = 1 / sqrt(3), not the plain
    # bootstrap's sqrt(2/3) times that.
    assert boot[:, 1].std() == pytest.approx(1 / np.sqrt(3), rel=0.08)
    # Each resample is the mean of three of the point's seeds, stretched about the point's mean by sqrt(3/2).
    plain = np.array([np.mean(c) for c in itertools.product([1.0, 2.0, 3.0], repeat=3)])
    assert set(np.round(boot[:, 1], 9)) <= set(np.round(2.0 + (plain - 2.0) * np.sqrt(1.5), 9))
    assert np.array_equal(boot, seed_bootstrap(values, 500, seed=0))  # seeded
