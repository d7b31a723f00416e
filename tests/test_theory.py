"""Exact gradient-flow simulations: gradients against finite differences and closed forms, the Euler flow
against an exact solution, the three theorems' statements on small sizes, and `run`'s files and errors."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy.special import softmax as sp_softmax

from rmteach.theory import experiments, sim
from rmteach.theory import report as theory_report
from rmteach.core.errors import UserError


def _finite_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function f at x, one coordinate at a time."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def _tabular_phi(theta, theta_ref, reward, lam):
    """The objective written out directly with scipy's softmax: mean_x sum_y pi r - lam * KL."""
    pi, ref = sp_softmax(theta, axis=-1), sp_softmax(theta_ref, axis=-1)
    return float(np.mean(np.sum(pi * reward, axis=-1) - lam * np.sum(pi * np.log(pi / ref), axis=-1)))


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_tabular_gradient_matches_finite_differences(lam):
    rng = np.random.default_rng(0)
    theta, theta_ref = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    reward = rng.uniform(-1, 1, (3, 6))
    fd = _finite_difference(lambda th: _tabular_phi(th, theta_ref, reward, lam), theta)
    np.testing.assert_allclose(sim.tabular_gradient(theta, theta_ref, reward, lam), fd, atol=1e-9)
    assert sim.tabular_objective(theta, theta_ref, reward, lam) == pytest.approx(
        _tabular_phi(theta, theta_ref, reward, lam), rel=1e-12)


def test_tabular_gradient_is_the_closed_form_for_lambda_zero():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(2, 4, 7)) * 3  # (B, S, Y)
    reward, gold = rng.uniform(-1, 1, (2, 4, 7)), rng.uniform(-1, 1, (4, 7))
    grad, gold_mean = sim.TabularField(rng.normal(size=(4, 7)), reward, gold)(theta)
    for b, x in itertools.product(range(2), range(4)):
        pi = np.exp(theta[b, x]) / np.exp(theta[b, x]).sum()
        expected = pi * (reward[b, x] - pi @ reward[b, x]) / 4  # / |S|: the objective is a mean over prompts
        np.testing.assert_allclose(grad[b, x], expected, rtol=1e-12, atol=1e-15)
    for b in range(2):
        pis = [np.exp(theta[b, x]) / np.exp(theta[b, x]).sum() for x in range(4)]
        assert gold_mean[b] == pytest.approx(np.mean([p @ g for p, g in zip(pis, gold)]), rel=1e-12)


def test_kl_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    theta, theta_ref = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))

    def kl(th):  # mean over prompts of KL(pi || pi_ref), summed by hand
        return np.mean([sum(p * math.log(p / q) for p, q in zip(sp_softmax(a), sp_softmax(b)))
                        for a, b in zip(th, theta_ref)])

    # With zero reward and lam = 1 the objective is -KL.
    grad = sim.tabular_gradient(theta, theta_ref, np.zeros((2, 5)), lam=1.0)
    np.testing.assert_allclose(grad, -_finite_difference(kl, theta), atol=1e-9)
    assert np.allclose(sim.tabular_gradient(theta_ref, theta_ref, np.zeros((2, 5)), lam=1.0), 0.0)


@pytest.mark.parametrize("lam", [0.0, 0.4])
def test_autoregressive_gradient_matches_finite_differences(lam):
    S, V = 2, 3
    rng = np.random.default_rng(3)
    params, params_ref = rng.normal(size=(1, S * V + V * V)), rng.normal(size=(1, S * V + V * V))
    reward = rng.uniform(-1, 1, (S, V, V))

    def phi(p):  # pi(a, b | x) = softmax(u_x)[a] * softmax(u_x + w_a)[b], written with loops
        def policy(q):
            u, w = q[0, : S * V].reshape(S, V), q[0, S * V :].reshape(V, V)
            return {(x, a, b): sp_softmax(u[x])[a] * sp_softmax(u[x] + w[a])[b]
                    for x, a, b in itertools.product(range(S), range(V), range(V))}

        pi, ref = policy(p), policy(params_ref)
        return sum(pi[k] * (reward[k] - lam * math.log(pi[k] / ref[k])) for k in pi) / S

    field = sim.AutoregressiveField(params_ref, reward, reward, S, V, lam)
    np.testing.assert_allclose(field(params)[0], _finite_difference(phi, params), atol=1e-9)


def test_flow_matches_the_exact_two_output_solution():
    # |S| = 1, |Y| = 2, r = (1, 0), lam = 0: p = pi(y_1) obeys dp/dt = 2 p^2 (1 - p)^2, so
    # t(p) = (F(p) - F(p0)) / 2 with F(p) = -1/p + 1/(1 - p) + 2 log(p / (1 - p)).
    F = lambda p: -1 / p + 1 / (1 - p) + 2 * math.log(p / (1 - p))
    p0, gamma = 0.2, 0.3
    theta_ref = np.log(np.array([[p0, 1 - p0]]))
    reward = np.array([[1.0, 0.0]])
    exact = (F(p0 + gamma) - F(p0)) / 2
    for adaptive, step in [(True, 0.005), (False, 0.01)]:
        flow = sim.gradient_flow(theta_ref[None], sim.TabularField(theta_ref, reward, reward), gamma, step,
                                    adaptive=adaptive)
        assert flow.t_gamma[0] == pytest.approx(exact, rel=0.01)


@pytest.mark.parametrize("adaptive, step", [(True, 0.04), (False, 2.0)])
def test_halving_the_step_changes_t_gamma_by_under_two_percent(adaptive, step):
    kw = dict(n_prompts=4, n_outputs=30, alphas=(1.0, 0.3, 0.1), adaptive=adaptive)
    t1 = np.array(experiments.variance_tabular(step=step, **kw)["t_gamma"])
    t2 = np.array(experiments.variance_tabular(step=step / 2, **kw)["t_gamma"])
    assert np.all(np.abs(t1 / t2 - 1) < 0.02)


def test_reward_variance_and_accuracy_against_pair_sums():
    rng = np.random.default_rng(4)
    pi = sp_softmax(rng.normal(size=(3, 5)), axis=-1)
    r, g = rng.uniform(-1, 1, (3, 5)), rng.uniform(-1, 1, (3, 5))
    r[0, 1] = r[0, 2]  # a tie in the RM only: that pair counts as an error
    for x in range(3):
        pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
        half_sq = sum(pi[x, i] * pi[x, j] * (r[x, i] - r[x, j]) ** 2 / 2 for i, j in pairs)
        assert sim.reward_variance(pi, r)[x] == pytest.approx(half_sq, rel=1e-12)
        agree = {(i, j): float(np.sign(r[x, i] - r[x, j]) == np.sign(g[x, i] - g[x, j])) for i, j in pairs}
        uniform = sum(agree.values()) / len(pairs)
        weighted = sum(pi[x, i] * pi[x, j] * a for (i, j), a in agree.items()) / sum(
            pi[x, i] * pi[x, j] for i, j in pairs)
        assert sim.pairwise_accuracy(r, g)[x] == pytest.approx(uniform, rel=1e-12)
        assert sim.pairwise_accuracy(r, g, pi)[x] == pytest.approx(weighted, rel=1e-12)


def test_shrink_likely_keeps_the_ranking_and_lowers_the_variance():
    theta_ref, gold = experiments.tabular_instance(5, 40, seed=5)
    pi0 = sim.softmax(theta_ref)
    np.testing.assert_allclose(sim.shrink_likely(gold, pi0, 1.0), gold, atol=1e-15)
    variances = []
    for alpha in (0.5, 0.1, 0.01):
        r = sim.shrink_likely(gold, pi0, alpha, mass=0.9)
        assert np.all(sim.pairwise_accuracy(r, gold) == 1.0)
        assert r.min() >= gold.min() - 1e-12 and r.max() <= gold.max() + 1e-12
        variances.append(sim.reward_variance(pi0, r).mean())
    assert variances[0] > variances[1] > variances[2]


@pytest.mark.parametrize("sweep", [experiments.variance_tabular, experiments.variance_autoregressive])
def test_lower_variance_means_slower_with_slope_at_most_minus_a_third(sweep):
    small = dict(n_prompts=4, n_outputs=40) if sweep is experiments.variance_tabular else dict(n_prompts=3, vocab=5)
    res = sweep(alphas=tuple(np.geomspace(0.01, 1.0, 5)), **small)
    var, t = np.array(res["variance"]), np.array(res["t_gamma"], dtype=float)
    order = np.argsort(var)
    assert np.all(np.diff(t[order]) < 0)
    slope = np.polyfit(np.log(var), np.log(t), 1)[0]  # refit independently of the module's own fit
    assert slope <= -1 / 3
    assert res["fit"]["slope"] == pytest.approx(slope)
    assert res["checks"] == {"t_gamma_decreases": True, "slope_at_most_minus_third": True}
    # The envelope constants really lie below every point.
    assert np.all(t >= res["fit"]["c_half"] * var**-0.5 * (1 - 1e-12))


def test_perfectly_accurate_low_variance_rm_is_at_least_10x_slower():
    res = experiments.experiment_accuracy(n_prompts=3, n_outputs=30)
    truth, accurate, inaccurate = res["rms"]
    assert accurate["accuracy"] == 1.0 and accurate["onpolicy_accuracy"] == 1.0
    assert inaccurate["accuracy"] <= 2 / 30
    assert accurate["variance"] < inaccurate["variance"]
    assert accurate["t_gamma"] >= 10 * inaccurate["t_gamma"]
    assert res["ratio"] == pytest.approx(accurate["t_gamma"] / inaccurate["t_gamma"])


def test_each_rm_is_fast_for_one_mirror_policy_and_slow_for_the_other():
    res = experiments.experiment_policies(n_prompts=2, n_outputs=10)
    (a1, a2), (b1, b2) = res["t_gamma"]
    assert res["start_gold"][0] == pytest.approx(res["start_gold"][1])
    assert a1 < a2 and b2 < b1
    assert a2 > 10 * a1 and b1 > 10 * b2
    assert res["checks"]["flip"]


def test_run_writes_json_plots_and_html(tmp_path):
    out = tmp_path / "theory"
    result = experiments.run(out, "all", seed=1)
    assert sorted(p.name for p in out.iterdir()) == [
        ".rmteach-out.json", "accuracy.png", "policies.png", "theory.html", "theory.json", "variance.png"]
    on_disk = json.loads((out / "theory.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert on_disk["schema"] == "rmteach.theory/1" and on_disk["seed"] == 1
    assert set(on_disk["experiments"]) == {"variance", "accuracy", "policies"}
    for name in ("variance", "accuracy", "policies"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "theory.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 3
    assert "http" not in page
    section = theory_report.theory_html_section(result, out)
    assert section.startswith("<section") and section.count("<img") == 3


def test_run_one_experiment(tmp_path):
    result = experiments.run(tmp_path, "policies")
    assert list(result["experiments"]) == ["policies"]
    assert not (tmp_path / "variance.png").exists()


@pytest.mark.parametrize("bad", ["Variance", "", "bogus"])
def test_bad_experiment_is_a_user_error_naming_the_choices(tmp_path, bad):
    with pytest.raises(UserError, match="variance, accuracy, policies, all"):
        experiments.run(tmp_path / "out", bad)
    assert not (tmp_path / "out").exists()


def test_bad_seed_and_out_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--seed"):
        experiments.run(tmp_path / "out", "policies", seed=-1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        experiments.run(tmp_path / "file", "policies")
