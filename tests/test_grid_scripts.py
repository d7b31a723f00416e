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
