"""Seed noise: the split-half noise ceiling, resolved differences and the seed bootstrap, checked by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from rmteach.study.noise import Z_MARGIN, resolved_difference, seed_bootstrap, split_half_reliability


def test_split_half_reliability_by_hand():
    rng = np.random.default_rng(0)
    values = np.arange(5.0)[:, None] + rng.normal(0, 1.5, size=(5, 4))  # 5 RMs x 4 seeds, noisy
    # The 3 distinct 2-vs-2 splits of 4 seeds, each computed directly.
    splits = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    want = [stats.spearmanr(values[:, a].mean(1), values[:, b].mean(1)).statistic for a, b in splits]
    got = split_half_reliability(values)
    assert got["n_splits"] == 3 and got["mean"] == pytest.approx(np.mean(want))
    assert got["min"] == pytest.approx(min(want)) and got["max"] == pytest.approx(max(want))
    # 3 seeds: 1 vs 2, three splits; 6 seeds: the ten 3-vs-3 splits.
    assert split_half_reliability(values[:, :3])["n_splits"] == 3
    assert split_half_reliability(np.tile(values, 2)[:, :6])["n_splits"] == len(list(itertools.combinations(range(6), 3))) // 2


def test_noise_ceiling_is_low_for_pure_noise_and_undefined_without_seeds():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(8, 6))  # RMs that do not differ: the halves disagree
    assert abs(split_half_reliability(noise)["mean"]) < 0.5
    assert split_half_reliability(noise[:, :1])["mean"] is None  # one seed: no split
    assert split_half_reliability(noise[:2])["mean"] is None  # two RMs: no rank correlation


def test_resolved_difference_is_welch_two_standard_errors():
    a, b = [1.0, 1.3, 1.1, 1.2], [0.9, 1.0, 1.2, 0.8]
    se = np.sqrt(np.var(a, ddof=1) / 4 + np.var(b, ddof=1) / 4)
    got = resolved_difference(a, b)
    assert got["difference"] == pytest.approx(np.mean(a) - np.mean(b)) and got["se"] == pytest.approx(se)
    assert got["resolved"] == (abs(np.mean(a) - np.mean(b)) > Z_MARGIN * se)
    assert resolved_difference([5.0, 5.1], [1.0, 1.1])["resolved"]
    assert not resolved_difference([1.0, 2.0], [1.1, 1.9])["resolved"]  # inside the noise
    assert resolved_difference([3.0], [1.0]) == {"difference": 2.0, "se": None, "resolved": False}


def test_seed_bootstrap_draws_each_points_own_seeds():
    values = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    boot = seed_bootstrap(values, 500, seed=0)
    assert boot.shape == (500, 2)
    assert (boot[:, 0] == 0).all() and boot[:, 1].min() >= 1 and boot[:, 1].max() <= 3
    assert abs(boot[:, 1].mean() - 2.0) < 0.1  # centred on the mean over seeds
    assert np.array_equal(boot, seed_bootstrap(values, 500, seed=0))  # seeded
