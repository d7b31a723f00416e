"""The study report: tables, figures and the HTML page, from a synthetic study dict; the page in Chromium."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rmteach.study import analysis, outcomes
from rmteach.study.report import page as study_report, plots

ROOT = Path(__file__).resolve().parents[1]
RMS = {"a": (0.6, 0.6, 0.7), "b": (0.3, 0.7, 0.8), "c": (0.1, 1.0, 1.0), "gold": (0.2, 1.0, 1.0)}  # var, on, off
RATE = {("p", "a"): 0.4, ("p", "b"): 0.2, ("p", "c"): 0.05, ("p", "gold"): 0.3,
        ("q", "a"): 0.1, ("q", "b"): 0.3, ("q", "c"): 0.02, ("q", "gold"): 0.2}


def make_study(name: str = "synthetic", rms=RMS, policies=("p", "q"), seeds=(0, 1)) -> dict:
    """A study dict as run_study builds it, from straight-line curves (gold rises RATE + 0.01 * seed)."""
    runs = []
    for pol in policies:
        for rm, (var, on, off) in rms.items():
            for seed in seeds:
                inc = RATE[(pol, rm)] + 0.01 * seed
                curve = {"step": [0, 5, 10], "gold": [0.1, 0.1 + inc / 2, 0.1 + inc], "proxy": [0.0, inc, 2 * inc],
                         "variance": [0.5, 0.5, 0.5]}
                runs.append({"policy": pol, "reward_model": rm, "seed": seed, "is_ground_truth": rm == "gold",
                             "folder": f"runs/{pol}/{rm}/seed{seed}",
                             "predictors": {"reward_variance": var, "onpolicy_accuracy": on, "offpolicy_accuracy": off,
                                            "on_off_accuracy": (on + off) / 2, "gold_rate": RATE[(pol, rm)] + 0.1,
                                            "lookahead": var * on, "best_of_k_gold_lift": on,
                                            "gradient_alignment": None},  # not computed: no table row, no plot
                             "outcomes": outcomes.run_outcomes(curve, [0.5, 1.0]), "curve": curve})
    result = analysis.analyze(runs, budgets=[0.5, 1.0], primary_outcome="gold_increase@1", include_ground_truth=False,
                              n_resamples=20, seed=0, roles={}, transformed={"c"})
    return {"schema": "rmteach.study/1", "name": name, "policies": list(policies),
            "reward_models": [r for r in rms if r != "gold"], "ground_truth": "gold", "seeds": list(seeds),
            "primary_outcome": "gold_increase@1", "outcomes": outcomes.outcome_names([0.5, 1.0]),
            "predictors": list(analysis.PREDICTORS), "runs": runs, **result, "config": {"name": name, "seeds": list(seeds)}}


def test_describe_outcome():
    assert study_report.describe_outcome("gold_increase@0.25").startswith("eval ground-truth (gold) reward after 25%")
    assert "area under" in study_report.describe_outcome("proxy_auc")


def test_correlation_table_puts_the_paper_beside_ours():
    study = make_study()
    header, rows = study_report.correlation_rows(study, "gold_increase@1")
    assert header[-3:] == ["reliability over seeds (sqrt: Spearman ceiling)", "paper Pearson", "paper Spearman"]
    assert len(rows) == (len(analysis.PREDICTORS) - 1) * 3  # p, q, pooled; gradient alignment was not measured
    # 2 seeds whose bump (0.01 * seed) is the same for every RM: the halves rank the RMs identically.
    assert {r[-3] for r in rows} == {"1.000 (sqrt 1.000; 1 splits)"}
    rate = [r for r in rows if r[0] == "forecast: gold_rate"][0]
    assert rate[4].startswith("1.000") and rate[-2:] == ["", ""]  # gold_rate = the rate + 0.1: ranks exactly
    first = rows[0]
    assert first[:3] == ["reward variance", "p", "3"] and first[-2:] == ["0.834", "0.714"]
    assert rows[1][-2:] == ["", ""] and rows[2][1] == "pooled"
    # p: variance .6 .3 .1 vs increase .405 .205 .055: concordant (rank methods 1), Pearson from numpy.
    r = np.corrcoef([0.6, 0.3, 0.1], [0.405, 0.205, 0.055])[0, 1]
    assert first[3].startswith(f"{r:.3f}\u00a0[") and first[4].startswith("1.000") and first[5].startswith("1.000")
    proxy = study_report.correlation_rows(study, "proxy_increase@1")[1]
    assert proxy[0][-2:] == ["0.982", "1.000"]


def test_ranking_rows_list_the_ground_truth_as_reference():
    header, rows = study_report.ranking_rows(make_study(), "q")
    assert header[:3] == ["rank", "reward model", "gold_increase@1"]
    assert [r[:2] for r in rows] == [["1", "b"], ["2", "a"], ["3", "c"], ["ref", "gold (ground truth)"]]
    assert rows[0][2] == "0.305" and rows[0][3] == f"{np.std([0.3, 0.31], ddof=1):.3f}"


def test_mean_band_interpolates_seeds_onto_common_steps():
    curves = [{"step": [0, 2, 4], "gold": [1.0, 2.0, 3.0]}, {"step": [0, 4], "gold": [0.0, 4.0]}]
    steps, mean, std = plots.mean_band(curves, "gold")
    assert steps.tolist() == [0, 2, 4]
    # increases: seed 1: 0, 1, 2; seed 2 (interpolated at step 2): 0, 2, 4
    assert mean.tolist() == pytest.approx([0.0, 1.5, 3.0])
    assert std.tolist() == pytest.approx([0.0, np.std([1, 2], ddof=1), np.std([2, 4], ddof=1)])


def test_combined_predictor_is_scaled_within_each_policy():
    xs = plots.scatter_x(make_study(), "variance_and_accuracy")
    # p: variance .6 .3 .1 -> 1, .4, 0; on-policy .6 .7 1 -> 0, .25, 1; mean -> .5, .325, .5
    assert xs[("p", "a")] == pytest.approx(0.5) and xs[("p", "b")] == pytest.approx(0.325)
    assert ("p", "gold") not in xs  # not among the RMs compared


def test_html_page_order_escaping_and_small_studies(tmp_path):
    study = make_study(name="<b>bold</b> & co")
    figs = {f"curves_{p}": b"png" for p in study["policies"]} | {f"scatter_{p}": b"png" for p in analysis.PREDICTORS}
    page = study_report.report_html(study, figs)
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page
    ids = [page.index(f'id="claim-{c}"') for c in "abc"]
    assert ids == sorted(ids) and ids[-1] < page.index("<h2>Reward curves</h2>")
    assert page.count("data:image/png;base64,cG5n") == len(figs)
    small = make_study(rms={"a": RMS["a"], "gold": RMS["gold"]})
    page = study_report.report_html(small, figs)
    assert "correlations need at least 3 reward models; this scope has 1" in page


@pytest.mark.slow
def test_write_report_is_deterministic(tmp_path):
    study = make_study()
    paths = study_report.write_report(tmp_path / "one", study)
    study_report.write_report(tmp_path / "two", study)
    names = sorted(p.name for p in (tmp_path / "one" / "plots").iterdir())
    assert names == sorted(["curves_p.png", "curves_q.png"] + [f"scatter_{p}.png" for p in analysis.PREDICTORS
                                                                if p != "gradient_alignment"])
    for n in names:
        assert (tmp_path / "one" / "plots" / n).read_bytes() == (tmp_path / "two" / "plots" / n).read_bytes()
    assert paths["report"].read_text() == (tmp_path / "two" / "report.html").read_text()
    md = paths["summary"].read_text()
    assert md.startswith("# rmteach study: synthetic") and "## Rankings" in md and "| 1 | b |" in md


def _browser_check():
    spec = importlib.util.spec_from_file_location("check_report_browser", ROOT / "scripts" / "check_report_browser.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("google-chrome") is None
                    and not os.environ.get("CI"),  # .ci/run installs it: in CI a missing browser fails the test
                    reason="no chromium installed (apt-get install chromium)")
@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    check = _browser_check()
    paths = study_report.write_report(tmp_path, make_study())
    assert check.check(paths["report"], tmp_path / "shot.png", height=2000) == []
    assert (tmp_path / "shot.png").read_bytes()[:4] == b"\x89PNG"
    # The check can fail: a broken image is found.
    broken = tmp_path / "broken.html"
    broken.write_text(paths["report"].read_text().replace("base64,iVBOR", "base64,XXXX", 1))
    problems = check.check(broken)
    n_images = paths["report"].read_text().count("<img ")  # 2 curves + 8 scatter plots
    assert n_images == 10 and problems and f"1 of {n_images} images did not load" in problems[0]
