"""The validation grids' pure summaries (`scripts/regime_analysis.py`, `scripts/curation_grid.py`), by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import curation_grid  # noqa: E402
import regime_analysis  # noqa: E402


def _cell(primary, acc, bok, rel, rms=("ground_truth", "a", "b"), hacked=(), bok_values=(1.0, 0.2, 0.6)):
    return {"spearman": {"gr_auto": primary, "onpolicy_accuracy": acc, "best_of_k_gold_lift": bok},
            "reliability": rel, "rms": list(rms), "hacked": list(hacked),
            "values": {"best_of_k_gold_lift": list(bok_values)}}


def test_acceptance_by_hand():
    cells = {"w0/p/sgd-kl0/60": _cell(0.95, 0.80, 0.85, 0.99),   # >= 0.9 and above both rivals: ok
             "w0/p/sgd-kl0/240": _cell(0.85, 0.95, 0.80, 0.99),  # below 0.9 with a reliable outcome: not ok
             "w1/p/sgd-kl0/60": _cell(0.88, 0.70, 0.70, 0.90),   # within 0.05 of an unreliable outcome: ok
             "w1/p/sgd-kl0/240": _cell(0.92, 0.98, 0.70, 0.99)}  # 0.06 below accuracy: not ok
    ok = regime_analysis.acceptance(cells)["ok"].tolist()
    assert ok == [True, False, True, False]


def test_hacking_recall_and_precision_by_hand():
    # shares: a 0.2, b 0.6 of the ground truth's best-of-K lift
    cells = {"w0/p/sgd-kl0/240": _cell(1, 1, 1, 1, hacked=["a"]),          # tau 0.25: flags a -> tp
             "w0/p/adamw-kl0/240": _cell(1, 1, 1, 1, hacked=["a", "b"]),   # tau 0.5: flags a; b missed
             "w0/p/adamw-kl0.05/240": _cell(1, 1, 1, 1, hacked=[]),        # tau 0.25: flags a -> false
             "w0/p/sgd-kl0/60": _cell(1, 1, 1, 1, hacked=["b"])}           # 60-step cells are not judged
    h = regime_analysis.hacking(cells, 0.25, 0.5)["w0"]
    assert (h["tp"], h["fp"], h["fn"]) == (2, 1, 1)
    assert h["recall"] == pytest.approx(2 / 3) and h["precision"] == pytest.approx(2 / 3)


def test_hacking_beyond_seed_noise_by_hand():
    # a: flagged (share 0.2 < 0.25), b: not (0.6); the seeds' changes decide what is judged
    rows = [{"policy": "p", "rm": m, "horizon": 240, "gold_auc": [1.0, 1.1, 0.9], "gold_change": ch}
            for m, ch in [("ground_truth", [0.3, 0.31, 0.29]), ("a", [-0.2, -0.21, -0.19]), ("b", [-0.1, 0.1, 0.0])]]
    cell = regime_analysis.analyze_cell(rows)
    assert cell["hacked"] == ["a"] and cell["hacked_beyond_noise"] == ["a"] and cell["held_beyond_noise"] == []
    cell["values"]["best_of_k_gold_lift"] = [1.0, 0.2, 0.6]
    b = regime_analysis.hacking({"w0/p/sgd-kl0/240": cell}, 0.25, 0.5)["w0"]["beyond_noise"]
    assert (b["tp"], b["fp"], b["fn"], b["undetermined"]) == (1, 0, 0, 1)  # b's interval holds 0: not judged


def test_best_rule_summary_by_hand():
    def row(rm, rule, speed, ci_hi, hacked=False):
        return {"world": "w", "policy": "p", "regime": "sgd", "reward_model": rm, "rule": rule,
                "speedup_steps": speed, "ci95": [0.0, ci_hi], "uniform_hacked": hacked}
    table = [row("a", "variance", 0.9, None), row("a", "forecast", 0.5, 0.8),   # best 0.5, sure
             row("b", "variance", 0.6, None), row("b", "forecast", None, None),  # best 0.6, not sure
             row("c", "variance", 0.95, 1.2), row("c", "forecast", 0.99, None),  # best 0.95
             row("d", "variance", 0.1, 0.2, hacked=True)]                        # hacks: left out
    last = curation_grid.best_rule_summary(table).splitlines()[-1]
    assert last == "| w | p | sgd | 3 | 2 | 1 | 0.60 |"


def test_gain_summary_and_the_gain_of_a_curated_set_by_hand(tmp_path):
    import json

    import pandas as pd

    def row(gain, speed, ci_hi, hacked=False):
        return {"forecast_gain": gain, "speedup_steps": speed, "ci95": [0.0, ci_hi], "uniform_hacked": hacked}
    table = [row(2.0, 0.5, 0.8), row(1.9, 0.6, 1.2), row(2.5, 0.1, 0.2, hacked=True),  # >= 1.9: 2 arms, 2 fast, 1 sure
             row(1.6, 0.7, None), row(1.5, None, None),                                # 1.5-1.9: 2 arms, none fast
             row(1.2, 0.4, 0.9), row(None, 0.1, 0.2)]                                  # < 1.5: 1 arm; no gain: left out
    assert curation_grid.gain_summary(table).splitlines()[2:] == [
        "| >= 1.9 | 2 | 2 | 1 |", "| 1.5-1.9 | 2 | 0 | 0 |", "| < 1.5 | 1 | 1 | 1 |"]
    # The gain from a study's evaluate table and a set's kept ids: terms 4, 1, 2, 1 (mean 2); kept a and c: mean 3.
    (tmp_path / "evaluate" / "p").mkdir(parents=True)
    pd.DataFrame({"prompt_id": list("abcdab"), "reward_model": ["r"] * 4 + ["x"] * 2,
                  "variance": [1.0] * 6, "forecast_term": [4.0, 1.0, 2.0, 1.0, 9.0, 9.0],
                  "onpolicy_accuracy": [0.5] * 6}).to_parquet(tmp_path / "evaluate" / "p" / "prompts.parquet")
    (tmp_path / "curation" / "p" / "r" / "variance").mkdir(parents=True)
    (tmp_path / "curation" / "p" / "r" / "variance" / "selection.json").write_text(json.dumps({"kept_ids": ["c", "a"]}))
    assert curation_grid.forecast_gain(tmp_path, "p", "r", "variance") == pytest.approx(3 / 2)


def test_forecast_sample_noise_on_a_hand_built_evaluate(tmp_path, capsys):
    import json

    import numpy as np
    import pandas as pd

    import forecast_sample_noise as fsn

    # On-policy accuracy (evaluate's, core.metrics) by hand: pairs (0,1) (0,2) (1,2) of [1, 2, 3]; r gets (0,1)
    # right, ties (0,2) and reverses (1,2).
    assert fsn.onpolicy_accuracy(np.array([[5.0, 6.0, 5.0]]), np.array([[1.0, 2.0, 3.0]])) == pytest.approx(1 / 3)
    # ... and a pair tied in both counts as agreement: (0,1) tied in both, (0,2) and (1,2) right.
    assert fsn.onpolicy_accuracy(np.array([[1.0, 1.0, 2.0]]), np.array([[0.0, 0.0, 1.0]])) == 1.0

    # An evaluate of 4 RMs on 200 x 8: gold, gold + small noise, gold + large noise, noise only; outcomes ordered
    # the same way, so every size's gold_rate Spearman is near 1 and the full one is exactly 1.
    rng = np.random.default_rng(0)
    gold = rng.normal(size=(200, 8))
    rms = {"ground_truth": gold, "near": gold + 0.1 * rng.normal(size=gold.shape),
           "far": gold + 3.0 * rng.normal(size=gold.shape), "none": rng.normal(size=gold.shape)}
    rows = [{"prompt_id": f"p{i:03d}", "sample": k, "reward_model": rm, "reward": float(r[i, k])}
            for rm, r in rms.items() for i in range(200) for k in range(8)]
    (tmp_path / "ev").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "ev" / "rewards.parquet")
    auc = {"ground_truth": 0.4, "near": 0.3, "far": 0.1, "none": 0.0}
    study = {"points": [{"policy": "p", "reward_model": rm, "is_ground_truth": rm == "ground_truth",
                         "outcomes": {"gold_auc": {"mean": v}}} for rm, v in auc.items()]}
    (tmp_path / "s.json").write_text(json.dumps(study))
    values, _ = fsn.predictors(fsn.rewards_by_rm(tmp_path / "ev"), "ground_truth", sorted(auc), False)
    # gold_rate of the ground truth itself: the mean per-prompt variance of the normalized gold (ddof 1).
    gn = (gold - gold.mean()) / gold.std(ddof=1)
    assert values["gold_rate"]["ground_truth"] == pytest.approx(np.var(gn, axis=1, ddof=1).mean())
    fsn.main([str(tmp_path / "ev"), str(tmp_path / "s.json"), "--policy", "p", "--draws", "3"])
    out = capsys.readouterr().out
    assert "all 200 x 8: gold_rate +1.000" in out
    assert out.count("\n 48 x 4") == 1 and "200 x 4" in out and " 96 x 8" in out


def test_reanalyze_study_swaps_one_policys_predictors_and_keeps_the_outcomes(tmp_path):
    import json

    import numpy as np

    import reanalyze_study
    from rmteach.core.metrics import correlation
    from rmteach.study.grid import expand
    from rmteach.study.run import run_study
    from study_world import fake_evaluate, fake_evaluate_null, fake_train, make_config

    cfg = make_config()
    study = run_study(cfg, tmp_path / "s", train_fn=fake_train, evaluate_fn=fake_evaluate)
    alpha = next(e for e in expand(cfg, tmp_path / "s").evaluations if e.policy == "alpha")
    (tmp_path / "new").mkdir()
    report = fake_evaluate_null(alpha.config, tmp_path / "new")  # another evaluate of alpha: a random gold_rate
    reanalyze_study.main([str(tmp_path / "s" / "study.json"), str(tmp_path / "new" / "report.json"),
                          "--out", str(tmp_path / "re")])
    new = json.loads((tmp_path / "re" / "study.json").read_text())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.md").write_text("a user's own notes")
    with pytest.raises(SystemExit, match="not empty"):  # a folder holding anything is never written into
        reanalyze_study.main([str(tmp_path / "s" / "study.json"), str(tmp_path / "new" / "report.json"),
                              "--out", str(tmp_path / "mine")])
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["summary.md"]
    assert (tmp_path / "mine" / "summary.md").read_text() == "a user's own notes"
    assert "## Claims" in (tmp_path / "re" / "summary.md").read_text()
    cards = {c["name"]: c for c in report["reward_models"]}
    for old_run, new_run in zip(study["runs"], new["runs"]):
        assert new_run["outcomes"] == old_run["outcomes"]  # training is not redone
        if new_run["policy"] == "alpha":
            assert new_run["predictors"]["gold_rate"] == cards[new_run["reward_model"]]["forecast"]["gold_rate"]["value"]
        else:
            assert new_run["predictors"] == old_run["predictors"]
    # alpha's Spearman of gold_rate with the primary outcome, recomputed from the points by hand.
    primary = new["primary_outcome"]
    pts = [p for p in new["points"] if p["policy"] == "alpha"]
    by_hand = correlation(np.array([p["predictors"]["gold_rate"] for p in pts]),
                          np.array([p["outcomes"][primary]["mean"] for p in pts]), "spearman")
    table = lambda st: st["correlations_all_rms"]["scopes"]["alpha"]["table"]["gold_rate"][primary]["spearman"]  # noqa: E731
    assert table(new)["value"] == pytest.approx(by_hand)
    assert table(new)["value"] != table(study)["value"]
    # Pooling a study of another seed: every run once, the seeds' union, the means over all three seeds.
    more = run_study(make_config(seeds=[2]), tmp_path / "s2", train_fn=fake_train, evaluate_fn=fake_evaluate)
    pooled = reanalyze_study.reanalyze(study, report, [more])
    assert len(pooled["runs"]) == len(study["runs"]) + len(more["runs"]) and pooled["seeds"] == [0, 1, 2]
    point = next(p for p in pooled["points"] if p["policy"] == "beta" and p["reward_model"] == "rm50")
    values = [r["outcomes"][primary] for r in pooled["runs"] if r["policy"] == "beta" and r["reward_model"] == "rm50"]
    assert sorted(point["outcomes"][primary]["values"]) == pytest.approx(sorted(values)) and len(values) == 3
    with pytest.raises(SystemExit, match="share a"):
        reanalyze_study.reanalyze(study, report, [study])


def test_reanalyze_study_pools_a_study_of_another_policy(tmp_path):
    import reanalyze_study
    from rmteach.study.grid import expand
    from rmteach.study.run import run_study
    from study_world import fake_evaluate, fake_evaluate_null, fake_train, make_config

    first = run_study(make_config(only={"policies": ["alpha"]}), tmp_path / "a", train_fn=fake_train,
                      evaluate_fn=fake_evaluate)
    second = run_study(make_config(only={"policies": ["beta"]}), tmp_path / "b", train_fn=fake_train,
                       evaluate_fn=fake_evaluate)
    assert first["policies"] == ["alpha"] and second["policies"] == ["beta"]
    second["forecast_stability"] = {"beta": 0.5}  # a value of its own, to see it carried
    alpha = next(e for e in expand(make_config(), tmp_path / "a").evaluations if e.policy == "alpha")
    (tmp_path / "new").mkdir()
    report = {**fake_evaluate_null(alpha.config, tmp_path / "new"), "ranking": {"stability": 0.7}}
    pooled = reanalyze_study.reanalyze(first, report, [second])
    assert pooled["policies"] == ["alpha", "beta"] and pooled["config"]["only"]["policies"] == ["alpha", "beta"]
    assert pooled["forecast_stability"]["beta"] == 0.5
    assert pooled["forecast_stability"]["alpha"] == 0.7
    beta_runs = [r for r in pooled["runs"] if r["policy"] == "beta"]
    assert [r["predictors"] for r in beta_runs] == [r["predictors"] for r in second["runs"]]  # its own, unchanged
    assert set(pooled["correlations_all_rms"]["scopes"]) >= {"alpha", "beta"}  # each policy judged on its own
