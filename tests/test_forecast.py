"""`evaluate.forecast`, pure: each forecast by hand, against the theory's exact gradient, and its invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rmteach.evaluate.forecast import (
    FORECASTS,
    best_of_k_per_prompt,
    forecast_report,
    gold_rate_per_prompt,
    lookahead_per_prompt,
    normalize,
    per_prompt_forecasts,
    proxy_signal,
    standardize_per_prompt,
)
from rmteach.evaluate.ranking import bootstrap_indices, forecast_sentence, rank, summarize
from rmteach.theory.sim import tabular_gradient, tabular_objective


def _tables(seed: int, n: int = 6, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A raw RM table r and a ground truth g that agrees with it in part: (n, K) each."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(n, k)) * rng.uniform(0.5, 2.0, size=(n, 1)) + rng.normal(size=(n, 1))
    r = 0.7 * g + rng.normal(size=(n, k))
    return r, g


def _my_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std(ddof=1)


def _forecasts(r: np.ndarray, g: np.ndarray, *, group: bool = False, steps: int = 8, step_size: float = 0.3):
    return per_prompt_forecasts(proxy_signal(r, group=group), normalize(g), r, steps=steps, step_size=step_size)


# ----------------------------------------------------------------------------------------------------------
# gold_rate


def test_gold_rate_by_hand_on_a_2x3_example():
    z = np.array([[1.0, 2.0, 6.0], [0.0, -1.0, 4.0]])
    gn = np.array([[3.0, 0.0, 0.0], [2.0, 2.0, 5.0]])
    expected = []
    for i in range(2):
        zbar = (z[i, 0] + z[i, 1] + z[i, 2]) / 3
        gbar = (gn[i, 0] + gn[i, 1] + gn[i, 2]) / 3
        s = sum((z[i, k] - zbar) * (gn[i, k] - gbar) for k in range(3))
        expected.append(s / 2)  # ddof=1: K - 1 = 2
    # Row 0: zbar 3, gbar 1: (-2)(2) + (-1)(-1) + (3)(-1) = -6 -> -3.
    # Row 1: zbar 1, gbar 3: (-1)(-1) + (-2)(-1) + (3)(2) = 9 -> 4.5.
    assert expected == [-3.0, 4.5]
    assert gold_rate_per_prompt(z, gn).tolist() == pytest.approx(expected, abs=1e-12)


def test_gold_rate_is_std_times_std_times_correlation():
    r, g = _tables(0)
    z, gn = normalize(r), normalize(g)
    got = per_prompt_forecasts(z, gn, r, steps=3, step_size=0.1)["gold_rate"]
    expected = [np.std(z[i], ddof=1) * np.std(gn[i], ddof=1) * np.corrcoef(z[i], gn[i])[0, 1] for i in range(len(r))]
    assert got == pytest.approx(expected, abs=1e-12)
    assert set(_forecasts(r, g)) == set(FORECASTS)


def test_normalize_matches_a_manual_normalization():
    r, _ = _tables(1)
    assert normalize(r) == pytest.approx(_my_normalize(r), abs=1e-12)
    assert normalize(np.full((3, 4), 2.5)).tolist() == np.zeros((3, 4)).tolist()


def test_standardize_per_prompt_matches_rowwise_zscores():
    r, _ = _tables(2)
    r[3] = 1.25  # a constant prompt carries no signal
    got = standardize_per_prompt(r)
    for i in range(len(r)):
        expected = np.zeros(r.shape[1]) if i == 3 else (r[i] - r[i].mean()) / r[i].std(ddof=1)
        assert got[i] == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# The derivation: gold_rate is the exact initial rate of the tabular gradient flow, up to one constant


def _rms(r: np.ndarray, g: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    half = r.copy()
    half[: len(r) // 2] *= 0.001
    return {"r": r, "-r": -r, "half_scaled": half, "noisy_g": g + 0.3 * rng.normal(size=g.shape),
            "unrelated": rng.normal(size=g.shape)}


@pytest.mark.parametrize("name", ["r", "-r", "half_scaled", "noisy_g", "unrelated"])
def test_gold_rate_is_the_exact_rate_of_the_tabular_flow(name):
    r, g = _tables(3, n=7, k=5)
    s, k = r.shape
    z, gn = normalize(_rms(r, g)[name]), normalize(g)
    theta0 = np.zeros((s, k))  # uniform policy over the K samples of every prompt
    grad_z = tabular_gradient(theta0, theta0, z)
    exact = float((tabular_gradient(theta0, theta0, gn) * grad_z).sum())  # d/dt E[gn] under theta' = grad J_z
    h = 1e-5  # central difference along the flow's direction
    fd = (tabular_objective(h * grad_z, theta0, gn) - tabular_objective(-h * grad_z, theta0, gn)) / (2 * h)
    c = (k - 1) / (s * k**2)
    forecast = c * gold_rate_per_prompt(z, gn).mean()
    assert exact == pytest.approx(fd, rel=1e-6, abs=1e-12)
    assert forecast == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_the_flow_ranks_rms_as_gold_rate_does():
    r, g = _tables(4, n=7, k=5)
    theta0 = np.zeros(r.shape)
    gn = normalize(g)
    exact, forecast = {}, {}
    for name, rm in _rms(r, g).items():
        z = normalize(rm)
        exact[name] = float((tabular_gradient(theta0, theta0, gn) * tabular_gradient(theta0, theta0, z)).sum())
        forecast[name] = float(gold_rate_per_prompt(z, gn).mean())
    assert sorted(exact, key=exact.get) == sorted(forecast, key=forecast.get)
    assert forecast["-r"] < 0 < forecast["r"]


# ----------------------------------------------------------------------------------------------------------
# Invariances


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("a, b", [(3.0, -7.0), (0.01, 100.0)])
def test_forecasts_ignore_affine_changes_of_the_rm(a, b, group):
    r, g = _tables(5)
    base, moved = _forecasts(r, g, group=group), _forecasts(a * r + b, g, group=group)
    for name in FORECASTS:
        assert moved[name] == pytest.approx(base[name], abs=1e-9), name


@pytest.mark.parametrize("c, d", [(5.0, 2.0), (0.2, -40.0)])
def test_forecasts_ignore_affine_changes_of_the_ground_truth(c, d):
    r, g = _tables(6)
    base, moved = _forecasts(r, g), _forecasts(r, c * g + d)
    for name in FORECASTS:
        assert moved[name] == pytest.approx(base[name], abs=1e-9), name


def test_gold_rate_flips_sign_with_the_rm():
    r, g = _tables(7)
    up, down = _forecasts(r, g)["gold_rate"], _forecasts(-r, g)["gold_rate"]
    assert down == pytest.approx(-up, abs=1e-12)
    assert up.mean() > 0  # r was built to agree with g


def test_group_scaling_undoes_per_prompt_rescaling_but_rloo_does_not():
    r5, g5 = _tables(8, n=5, k=6)
    r, g = np.vstack([r5, r5]), np.vstack([g5, g5])  # (10, 6): the same 5 prompts twice
    scaled = r.copy()
    scaled[:5] *= 0.001  # the first copy barely varies
    grpo, grpo_scaled = _forecasts(r, g, group=True), _forecasts(scaled, g, group=True)
    for name in FORECASTS:
        assert grpo_scaled[name] == pytest.approx(grpo[name], abs=1e-9), name
    rloo, rloo_scaled = _forecasts(r, g)["gold_rate"], _forecasts(scaled, g)["gold_rate"]
    # The variance effect: under the global normalization the flattened prompts teach 1000x less, the others
    # gain only std(r) / std(scaled) <= sqrt(2) (the flattened half still counts in the std).
    assert rloo_scaled[:5] == pytest.approx(rloo[:5] * 0.001 * r.std() / scaled.std(), abs=1e-12)
    assert rloo_scaled[5:] == pytest.approx(rloo[5:] * r.std() / scaled.std(), abs=1e-12)
    assert rloo.mean() > 0 and rloo_scaled.mean() < 0.75 * rloo.mean()
    # best-of-K only reads the order: unchanged either way.
    assert _forecasts(scaled, g)["best_of_k_gold_lift"] == pytest.approx(_forecasts(r, g)["best_of_k_gold_lift"])


# ----------------------------------------------------------------------------------------------------------
# lookahead and best-of-K


def test_lookahead_one_step_by_hand():
    z = np.array([[1.0, -0.5, 2.0], [0.3, 0.3, -1.0]])
    gn = np.array([[0.0, 1.0, 3.0], [-2.0, 1.0, 0.5]])
    eta = 0.7
    expected = []
    for i in range(2):
        zbar = sum(z[i]) / 3  # uniform start: pi_k = 1/3
        theta = [eta * (1 / 3) * (z[i, k] - zbar) for k in range(3)]
        e = [math.exp(t) for t in theta]
        pi = [x / sum(e) for x in e]
        gain = sum(pi[k] * gn[i, k] for k in range(3)) - sum(gn[i]) / 3
        expected.append((0.0 + gain) / 2)  # trapezoid over t = 0..1, divided by T = 1
    assert lookahead_per_prompt(z, gn, 1, eta).tolist() == pytest.approx(expected, abs=1e-12)


def test_lookahead_two_steps_by_hand():
    z, gn, eta = np.array([[2.0, 0.0]]), np.array([[1.0, -1.0]]), 0.5
    theta, gains = [0.0, 0.0], [0.0]
    for _ in range(2):
        e = [math.exp(t) for t in theta]
        pi = [x / sum(e) for x in e]
        ez = pi[0] * 2.0 + pi[1] * 0.0
        theta = [theta[0] + eta * pi[0] * (2.0 - ez), theta[1] + eta * pi[1] * (0.0 - ez)]
        e = [math.exp(t) for t in theta]
        gains.append((e[0] - e[1]) / sum(e))  # E_pi[gn] - 0
    expected = ((gains[0] + gains[1]) / 2 + (gains[1] + gains[2]) / 2) / 2
    assert lookahead_per_prompt(z, gn, 2, eta).tolist() == pytest.approx([expected], abs=1e-12)


def test_lookahead_in_the_small_step_regime_is_gold_rate_to_first_order():
    """theta_t ~ t * eta * (z - zbar) / K, so the gain is t * eta * (K-1)/K^2 * cov: mean area eta * T/2 * that."""
    r, g = _tables(9, n=8, k=5)
    k, steps, eta = r.shape[1], 6, 1e-3
    z, gn = normalize(r), normalize(g)
    look = lookahead_per_prompt(z, gn, steps, eta)
    first_order = eta * steps / 2 * (k - 1) / k**2 * gold_rate_per_prompt(z, gn)
    assert look == pytest.approx(first_order, rel=2e-2, abs=1e-9)
    # Across RMs too: the lookahead orders them as gold_rate does.
    rms = {name: normalize(x) for name, x in _rms(r, g).items()}
    by_look = sorted(rms, key=lambda n: lookahead_per_prompt(rms[n], gn, steps, eta).mean())
    by_rate = sorted(rms, key=lambda n: gold_rate_per_prompt(rms[n], gn).mean())
    assert by_look == by_rate


def test_lookahead_sees_saturation():
    """A long run on the ground truth itself saturates: the mean gain falls below the first-order line."""
    _, g = _tables(10)
    gn = normalize(g)
    k = g.shape[1]
    look = lookahead_per_prompt(gn, gn, 400, 0.5)
    first_order = 0.5 * 400 / 2 * (k - 1) / k**2 * gold_rate_per_prompt(gn, gn)
    best_gain = gn.max(axis=1) - gn.mean(axis=1)
    assert np.all(look < first_order) and np.all(look > 0) and np.all(look < best_gain)


def test_best_of_k_by_hand_with_ties():
    r = np.array([[0.1, 0.9, 0.5], [2.0, 2.0, -1.0]])
    gn = np.array([[1.0, 4.0, -2.0], [3.0, 0.0, 6.0]])
    # Row 0: top is sample 1 (gn 4), mean gn 1 -> 3.  Row 1: samples 0 and 1 tie (gn 3, 0 -> 1.5), mean 3 -> -1.5.
    assert best_of_k_per_prompt(r, gn).tolist() == pytest.approx([3.0, -1.5], abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Bootstrap summary and ranking


def test_summarize_matches_a_manual_bootstrap():
    v = np.array([0.5, 1.0, -0.25, 2.0, 0.0])
    idx = bootstrap_indices(5, 300, 4)
    assert idx.shape == (300, 5) and idx.min() >= 0 and idx.max() <= 4
    means = [np.mean([v[j] for j in row]) for row in idx]
    out = summarize({"gold_rate": v}, idx)["gold_rate"]
    assert out["value"] == pytest.approx(sum(v) / 5)
    assert out["ci95"] == pytest.approx([np.quantile(means, 0.025), np.quantile(means, 0.975)], abs=1e-12)
    assert out["ci95"][0] < out["value"] < out["ci95"][1]


def test_rank_with_a_clear_winner():
    rng = np.random.default_rng(0)
    per_rm = {"b": 0.0 + 0.1 * rng.normal(size=40), "a": 2.0 + 0.1 * rng.normal(size=40),
              "c": -3.0 + 0.1 * rng.normal(size=40)}
    out = rank(per_rm, bootstrap_indices(40, 500, 1))
    assert [o["name"] for o in out["order"]] == ["a", "b", "c"]
    assert [o["value"] for o in out["order"]] == pytest.approx([per_rm[n].mean() for n in "abc"])
    assert out["order"][0]["p_above_next"] == 1.0 and out["order"][1]["p_above_next"] == 1.0
    assert out["order"][2]["p_above_next"] is None
    assert out["best"] == "a" and out["within_noise_of_best"] == []
    sentence = forecast_sentence(out, "gold_rate", "tiny")
    assert "`tiny`" in sentence and "by gold_rate: a;" in sentence and "every other RM is below it" in sentence


def test_rank_with_a_tie_within_noise():
    rng = np.random.default_rng(1)
    shared = rng.normal(size=30)
    per_rm = {"a": shared + 0.5 * rng.normal(size=30), "b": shared + 0.5 * rng.normal(size=30),
              "c": shared - 10.0}
    idx = bootstrap_indices(30, 500, 2)
    out = rank(per_rm, idx)
    first, second = sorted("ab", key=lambda n: -per_rm[n].mean())
    assert out["best"] == first and [o["name"] for o in out["order"]] == [first, second, "c"]
    # The paired bootstrap probability, recomputed by hand.
    boot = {n: np.array([per_rm[n][row].mean() for row in idx]) for n in per_rm}
    p = float(np.mean(boot[first] > boot[second]))
    assert out["order"][0]["p_above_next"] == pytest.approx(p) and 0.05 < p < 0.95
    assert out["order"][1]["p_above_next"] == 1.0
    assert out["within_noise_of_best"] == [second]
    sentence = forecast_sentence(out, "lookahead", "pol")
    assert f"by lookahead: {first}" in sentence
    assert f"within noise of it (bootstrap over prompts, 95%): {second}." in sentence
    assert "c" not in sentence.split(":")[-1]


def test_stability_is_the_mean_bootstrap_spearman_and_warns_when_low():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    shared = rng.normal(size=30)
    for spread, noise in ((1.0, 0.1), (0.05, 1.0)):  # well-separated RMs, then RMs far closer than their noise
        per_rm = {n: spread * i + shared + noise * rng.normal(size=30) for i, n in enumerate("abcde")}
        idx = bootstrap_indices(30, 300, 4)
        out = rank(per_rm, idx)
        names = sorted(per_rm)
        means = [per_rm[n].mean() for n in names]
        by_hand = np.mean([spearmanr([per_rm[n][row].mean() for n in names], means).statistic for row in idx])
        assert out["stability"] == pytest.approx(by_hand, abs=1e-12)
        sentence = forecast_sentence(out, "gold_rate", "p")
        assert f"Ranking stability {by_hand:.2f}" in sentence
        assert ("evaluate more prompts" in sentence) == (by_hand < 0.9)
        if spread == 1.0:
            assert by_hand == pytest.approx(1.0)
        else:
            assert by_hand < 0.9
    assert rank({"a": np.ones(3), "b": np.zeros(3)}, bootstrap_indices(3, 10, 0))["stability"] is None


@pytest.mark.parametrize("n_rms,n_prompts", [(3, 48), (7, 200)])
def test_stability_under_a_null_world_rarely_reads_stable(n_rms, n_prompts):
    """RMs whose true means are equal (their order is noise): the ranking must not read stable (>= 0.9) in more
    than 5% of worlds. Measured: 1.5% for 3 RMs on 48 prompts, 0% for 7 on 200 (mean stability 0.57-0.63)."""
    from rmteach.evaluate.ranking import STABLE, stability

    rng = np.random.default_rng(n_rms)
    reads_stable = []
    for t in range(100):
        shared = rng.normal(size=n_prompts)  # prompts that are hard for every RM alike
        per_rm = {f"r{i}": rng.uniform(0, 1) * shared + rng.normal(size=n_prompts) for i in range(n_rms)}
        reads_stable.append(stability(per_rm, bootstrap_indices(n_prompts, 200, t)) >= STABLE)
    assert np.mean(reads_stable) <= 0.05


def test_sentence_without_candidates():
    assert "No reward model" in forecast_sentence({"best": None, "within_noise_of_best": []}, "gold_rate", "p")


# ----------------------------------------------------------------------------------------------------------
# forecast_report: the ground truth scored on the first m of n prompts


def _cov_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([np.cov(a, b, ddof=1)[0, 1] for a, b in zip(x, y)])


def test_forecast_report_with_gold_on_the_first_prompts_only():
    rng = np.random.default_rng(12)
    n, m, k = 9, 5, 4
    gold = rng.normal(size=(m, k))
    rm = np.vstack([gold + 0.5 * rng.normal(size=(m, k)), 5.0 + 4.0 * rng.normal(size=(n - m, k))])
    other = rng.normal(size=(n, k))
    blocks, ranking = forecast_report(
        {"rm": rm, "other": other, "gold": gold}, gold, ["rm", "other"], group=False, steps=4, step_size=0.2,
        primary="gold_rate", n_resamples=200, seed=3)
    gn = (gold - gold.mean()) / gold.std(ddof=1)
    z_all = ((rm - rm.mean()) / rm.std(ddof=1))[:m]  # over all n prompts, as the trainer normalizes
    z_first = (rm[:m] - rm[:m].mean()) / rm[:m].std(ddof=1)  # the wrong choice, visibly different here
    expected = _cov_rows(z_all, gn).mean()
    assert blocks["rm"]["gold_rate"]["value"] == pytest.approx(expected, abs=1e-12)
    assert abs(_cov_rows(z_first, gn).mean() - expected) > 0.05
    assert blocks["rm"]["lookahead"]["value"] == pytest.approx(lookahead_per_prompt(z_all, gn, 4, 0.2).mean())
    top = rm[:m].argmax(axis=1)
    assert blocks["rm"]["best_of_k_gold_lift"]["value"] == pytest.approx(
        np.mean([gn[i, top[i]] - gn[i].mean() for i in range(m)]))
    # CIs come from resampling the m scored prompts.
    idx = np.random.default_rng(3).integers(0, m, size=(200, m))
    boots = _cov_rows(z_all, gn)[idx].mean(axis=1)
    assert blocks["rm"]["gold_rate"]["ci95"] == pytest.approx([np.quantile(boots, 0.025), np.quantile(boots, 0.975)])
    # The ground truth's own block: its gold_rate is the mean within-prompt variance of gn.
    assert blocks["gold"]["gold_rate"]["value"] == pytest.approx(np.var(gn, axis=1, ddof=1).mean())
    assert blocks["gold"]["best_of_k_gold_lift"]["value"] == pytest.approx((gn.max(axis=1) - gn.mean(axis=1)).mean())
    assert all(b["gradient_alignment"] is None for b in blocks.values())
    # Ranking: candidates only.
    assert ranking["primary"] == "gold_rate"
    assert sorted(o["name"] for o in ranking["order"]) == ["other", "rm"]
    assert ranking["best"] == max(["rm", "other"], key=lambda n: blocks[n]["gold_rate"]["value"])


def test_forecast_report_ranks_by_gradient_alignment_when_asked():
    r, g = _tables(13)
    blocks, ranking = forecast_report(
        {"a": r, "b": -r, "g": g}, g, ["a", "b"], group=True, steps=2, step_size=0.1,
        primary="gradient_alignment", n_resamples=50, seed=0, gradient={"a": -1.0, "b": 2.5, "g": 9.0})
    assert [(o["name"], o["value"]) for o in ranking["order"]] == [("b", 2.5), ("a", -1.0)]
    assert ranking["best"] == "b" and blocks["g"]["gradient_alignment"] == {"value": 9.0}
    # With group scaling the RM's signal is its per-prompt z-score.
    zs = (r - r.mean(axis=1, keepdims=True)) / r.std(axis=1, ddof=1, keepdims=True)
    assert blocks["a"]["gold_rate"]["value"] == pytest.approx(_cov_rows(zs, _my_normalize(g)).mean())


def test_forecast_report_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="rm/ground truth"):
        forecast_report({"rm": np.zeros((4, 3))}, np.zeros((4, 2)), ["rm"], group=False, steps=1, step_size=0.1,
                        primary="gold_rate", n_resamples=10, seed=0)


def test_a_single_estimate_ranking_claims_no_bootstrap():
    """Ranked by gradient alignment (one value per RM), the sentence must not claim a bootstrap result."""
    r = np.random.default_rng(0).normal(size=(6, 4))
    _, ranking = forecast_report({"a": r, "b": -r, "gold": r}, r, ["a", "b"], group=False, steps=2, step_size=0.1,
                                 primary="gradient_alignment", n_resamples=20, seed=0,
                                 gradient={"a": 1.0, "b": -1.0, "gold": 2.0})
    assert ranking["best"] == "a" and ranking["within_noise_of_best"] is None
    sentence = forecast_sentence(ranking, "gradient_alignment", "p")
    assert "bootstrap probability" not in sentence and "single estimate" in sentence
