"""Metric functions against hand-computed values, a second formula, and invariants (hypothesis)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rmteach.core import metrics


def test_normalization_by_hand():
    r = np.array([[1.0, 3.0], [5.0, 7.0]])
    norm = metrics.fit_normalization(r)
    assert norm.mean == 4.0
    # ddof=1: sum of squared deviations 9+1+1+9 = 20, / 3
    assert norm.std == pytest.approx(math.sqrt(20 / 3), abs=1e-15)
    z = norm.apply(r)
    assert z[0, 0] == pytest.approx(-3 / math.sqrt(20 / 3))


def test_constant_rewards_give_zero_std_and_zero_variance():
    norm = metrics.fit_normalization(np.full((3, 4), 2.5))
    assert norm.std == 0.0
    z = norm.apply(np.full((3, 4), 2.5))
    assert np.all(z == 0.0)
    assert metrics.variance_summary(z, n_resamples=20)["mean"] == 0.0


def test_per_prompt_variance_equals_half_mean_squared_pair_difference():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 6))
    pairs = list(itertools.combinations(range(6), 2))
    by_pairs = [np.mean([(row[i] - row[j]) ** 2 / 2 for i, j in pairs]) for row in z]
    np.testing.assert_allclose(metrics.per_prompt_variance(z), by_pairs, rtol=1e-12)


def test_variance_summary_by_hand():
    z = np.array([[0.0, 2.0], [1.0, 1.0], [0.0, 0.2], [3.0, -1.0]])  # variances 2, 0, 0.02, 8
    s = metrics.variance_summary(z, n_resamples=200, seed=1)
    assert s["mean"] == pytest.approx((2 + 0 + 0.02 + 8) / 4)
    assert s["median"] == pytest.approx((0.02 + 2) / 2)
    assert s["frac_below_0.01"] == 0.25
    lo, hi = s["ci95"]
    assert 0.0 <= lo <= s["mean"] <= hi <= 8.0


def test_onpolicy_accuracy_by_hand_with_ties():
    r = np.array([[1.0, 1.0, 2.0]])  # pairs (0,1) tie, (0,2) <, (1,2) <
    g = np.array([[0.0, 1.0, 2.0]])  # (0,1) <, (0,2) <, (1,2) <
    assert metrics.onpolicy_accuracy(r, g) == pytest.approx(2 / 3)
    # A tie in both counts as agreement (sign(0) == sign(0)).
    assert metrics.onpolicy_accuracy(np.array([[1.0, 1.0]]), np.array([[3.0, 3.0]])) == 1.0


def test_offpolicy_accuracy_ties_disagree():
    assert metrics.offpolicy_accuracy(np.array([1.0, 2.0, 3.0, 0.0]), np.array([0.0, 2.0, 1.0, 1.0])) == 0.5
    # vs a reference ordering: tie in both agrees.
    assert metrics.offpolicy_accuracy_vs(
        np.array([1.0, 2.0]), np.array([1.0, 1.0]), np.array([5.0, 0.0]), np.array([5.0, 1.0])
    ) == 0.5


def test_correlations_and_minmax():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 4.0])
    assert metrics.correlation(x, y, "spearman") == pytest.approx(0.8)
    assert metrics.correlation(x, y, "kendall") == pytest.approx(4 / 6)
    assert metrics.correlation(x, y, "pearson") == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(metrics.correlation(x, np.ones(4), "pearson"))
    assert math.isnan(metrics.correlation(x[:2], y[:2], "pearson"))
    res = metrics.correlation_with_ci(x, 2 * x + 1, "pearson", n_resamples=100, seed=0)
    assert res["value"] == pytest.approx(1.0) and res["ci95"][0] == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])


# ---------------------------------------------------------------------------------------------------------
# Properties

small_ints = st.integers(min_value=-20, max_value=20)
reward_grid = arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(2, 6)), elements=small_ints)


@settings(max_examples=60, deadline=None)
@given(r=reward_grid, data=st.data())
def test_accuracy_invariant_under_strictly_increasing_transform(r, data):
    g = data.draw(arrays(np.int64, r.shape, elements=small_ints))
    r = r.astype(np.float64)
    g = g.astype(np.float64)
    base = metrics.pairwise_sign_agreement(r, g)
    for f in (lambda x: 3 * x + 7, lambda x: x**3 + x, np.exp):
        np.testing.assert_array_equal(metrics.pairwise_sign_agreement(f(r), g), base)
    c, rj = r[:, 0], r[:, 1]
    assert metrics.offpolicy_accuracy(np.exp(c), np.exp(rj)) == metrics.offpolicy_accuracy(c, rj)


@settings(max_examples=60, deadline=None)
@given(
    r=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 6)), elements=st.floats(-100, 100)),
    a=st.floats(1e-3, 1e3),
    b=st.floats(-1e3, 1e3),
)
def test_normalized_variance_invariant_under_affine_map(r, a, b):
    def mean_var(x):
        norm = metrics.fit_normalization(x)
        return metrics.per_prompt_variance(norm.apply(x)).mean()

    if np.ptp(r) < 1e-3:  # (near-)constant: covered by the constant test
        return
    assert mean_var(a * r + b) == pytest.approx(mean_var(r), rel=1e-6, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(2, 6)), c=st.floats(-1e6, 1e6))
def test_constant_rm_has_zero_variance(shape, c):
    r = np.full(shape, c)
    norm = metrics.fit_normalization(r)
    assert metrics.per_prompt_variance(norm.apply(r)).max() == 0.0


@settings(max_examples=30, deadline=None)
@given(g=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 6)), elements=st.floats(-5, 5)))
def test_gold_has_onpolicy_accuracy_one(g):
    assert metrics.onpolicy_accuracy(g, g) == 1.0


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(np.int64, st.integers(3, 9), elements=st.integers(-4, 4)),
    data=st.data(),
)
def test_vectorized_correlations_agree_with_scipy(x, data):
    import warnings

    from scipy import stats as sps

    y = data.draw(arrays(np.int64, x.shape, elements=st.integers(-4, 4)))
    x, y = x.astype(float), y.astype(float)
    for method, fn in (("pearson", sps.pearsonr), ("spearman", sps.spearmanr), ("kendall", sps.kendalltau)):
        got = metrics.correlation(x, y, method)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            assert math.isnan(got)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = float(fn(x, y)[0])
        assert got == pytest.approx(ref, abs=1e-9)


def test_near_constant_input_is_undefined_not_a_warning():
    x = np.array([1.0, 1.0 + 2.3e-16, 1.0])  # spread of one ulp
    assert np.ptp(x) > 0
    assert math.isnan(metrics.correlation(x, np.array([1.0, 2.0, 3.0]), "pearson"))
